#!/usr/bin/env bash
# TorchServe's frontend is Java: stop early, with the fix, when Java >= 11 is missing.
set -eu
fix="install it, e.g. 'sudo apt-get install openjdk-17-jre-headless', then run make again"
if ! command -v java >/dev/null 2>&1; then
  echo "error: TorchServe needs Java 11 or newer and 'java' is not on PATH: $fix" >&2
  exit 1
fi
version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${version%%.*}
[ "$major" = "1" ] && major=$(echo "$version" | cut -d. -f2)  # 1.8 -> 8
if [ -z "$major" ] || [ "$major" -lt 11 ]; then
  echo "error: TorchServe needs Java 11 or newer, found '${version:-unknown}': $fix" >&2
  exit 1
fi
