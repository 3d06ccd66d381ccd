#!/usr/bin/env bash
# Prepare a Debian host to build and run the image with podman (`make image-host`; root; idempotent).
#
# Each step first checks whether it is needed and says what it changes:
#   1. podman, buildah, runc and mmdebstrap from Debian's packages;
#   2. /etc/containers/containers.conf: the runc runtime (crun cannot run on a host whose cgroups are in
#      hybrid mode) and explicit ulimits (podman's defaults exceed what an unprivileged VM grants);
#   3. the Dockerfile's base image: pulled when a registry answers, else made with mmdebstrap from
#      Debian's bookworm (the base's Python is 3.11, as in python:3.11-slim-bookworm) and tagged as it.
#
#   scripts/setup/image_host.sh [base-image]
set -euo pipefail

base=${1:-docker.io/library/python:3.11-slim-bookworm}
conf=/etc/containers/containers.conf
changed=0

say() { echo "image-host: $*"; }
fail() {
  echo "image-host: $*" >&2
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (apt-get, /etc/containers): run it with sudo"

missing=()
for pair in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "no apt-get: install ${missing[*]} with this system's package manager"
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap </dev/null
  changed=1
fi

if [ ! -e "$conf" ]; then
  say "writing $conf: runtime runc, ulimits nofile=20000 nproc=32768"
  mkdir -p "$(dirname "$conf")"
  cat >"$conf" <<'EOF'
# Written by mnist-serve's `make image-host` (scripts/setup/image_host.sh).
# crun cannot run where cgroups are in hybrid mode; runc can.
[engine]
runtime = "runc"

# Podman's default ulimits exceed what an unprivileged VM grants to its containers.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
EOF
  changed=1
elif ! grep -q '^runtime *= *"runc"' "$conf" || ! grep -q '^default_ulimits' "$conf"; then
  say "note: $conf exists and is left as it is; if containers fail to start, it needs"
  say '  [engine] runtime = "runc" and [containers] default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]'
fi

if podman image exists "$base"; then
  say "base image $base present"
elif timeout 60 podman pull -q "$base" >/dev/null 2>&1; then
  say "pulled the base image $base"
  changed=1
else
  say "no registry answers: making $base with mmdebstrap from Debian bookworm (about a minute)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mirror=http://deb.debian.org/debian
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$work/base.tar" \
    "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import --quiet --change 'CMD ["python3"]' "$work/base.tar" "$base" >/dev/null
  say "imported it as $base ($(podman image inspect --format '{{.Size}}' "$base" | numfmt --to=si)B)"
  changed=1
fi

if ! podman run --rm --network none "$base" true >/dev/null 2>"${TMPDIR:-/tmp}/image-host.err"; then
  fail "podman cannot run a container here: $(tail -n 1 "${TMPDIR:-/tmp}/image-host.err")"
fi
[ "$changed" -eq 1 ] && say "done: podman runs containers here" || say "nothing to change: podman runs containers here"
