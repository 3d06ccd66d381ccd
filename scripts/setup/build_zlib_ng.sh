#!/usr/bin/env bash
# Build zlib-ng as a zlib-compatible libz.so.1 into <venv>/lib/zlib-ng (`make install` runs this).
#
# Pillow's Linux wheels are compiled against zlib-ng, but auditwheel never bundles libz.so.1, so
# they load the distribution's zlib, which inflates PNGs much slower than zlib-ng (docs/serving.md).
# scripts.serving puts this directory on TorchServe's LD_LIBRARY_PATH (scripts.bench.serve
# restarts itself on it too). Without cmake and a C compiler the step is skipped with a note, and
# everything works on the system zlib, slower.
#
#   scripts/setup/build_zlib_ng.sh [venv]
set -euo pipefail

venv=${1:-.venv}
dest="$venv/lib/zlib-ng"
# python-zlib-ng's source distribution carries zlib-ng 2.3.3, the version Pillow's wheels are built with.
version=1.1.0
sha256=08a3a8468d4f130e3dc80d28ec42fcc7a878a57dfed616233e791066327d78a3

if [ -e "$dest/libz.so.1" ]; then
  exit 0
fi
for tool in cmake cc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "note: no $tool: zlib-ng not built, PNG decoding uses the system zlib (slower; apt-get install cmake gcc)"
    exit 0
  fi
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "zlib-ng==$version --hash=sha256:$sha256" >"$work/requirements.txt"
"$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
  --require-hashes -r "$work/requirements.txt" -d "$work"
tar -xzf "$work/zlib_ng-$version.tar.gz" -C "$work"
if ! {
  cmake -S "$work/zlib_ng-$version/src/zlib_ng/zlib-ng" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DZLIB_COMPAT=ON -DBUILD_SHARED_LIBS=ON -DZLIB_ENABLE_TESTS=OFF -DZLIBNG_ENABLE_TESTS=OFF -DWITH_GTEST=OFF &&
    cmake --build "$work/build" --parallel "$(nproc)"
} >"$work/build.log" 2>&1; then
  tail -n 20 "$work/build.log" >&2
  echo "error: building zlib-ng failed (log above)" >&2
  exit 1
fi
mkdir -p "$dest"
cp -P "$work/build"/libz.so.1* "$dest/"
echo "zlib-ng $(basename "$(readlink -f "$dest/libz.so.1")") built into $dest"
