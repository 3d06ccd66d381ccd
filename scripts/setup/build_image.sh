#!/usr/bin/env bash
# Build deploy/Dockerfile from a staged context with docker or podman (`make image`).
#
# The first engine that works is used: docker when its daemon answers, else podman when it can run a
# container. On a host whose pip reaches its index only through its own configuration (/etc/pip.conf,
# /etc/xdg/pip: a proxy's CA bundle, constraints), podman mounts that configuration read-only into the
# build's RUN steps; nothing of it stays in the image. Anything missing is one line and exit 1.
#
#   scripts/setup/build_image.sh IMAGE CONTEXT
set -euo pipefail

image=${1:?image tag}
context=${2:?build context}
dockerfile=deploy/Dockerfile
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$dockerfile")

fail() {
  echo "make image: $*" >&2
  exit 1
}

engine=
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then
  engine=podman
fi
[ -n "$engine" ] || fail "no working container engine (docker's daemon does not answer, podman is missing or fails): on Debian, 'make image-host' sets up podman"

args=(build -f "$dockerfile" -t "$image")
if [ "$engine" = podman ]; then
  # The HEALTHCHECK is kept in the docker format only (OCI images have no such field).
  args+=(--format docker)
  if ! podman image exists "$base" && ! podman image exists "docker.io/library/$base" &&
    ! timeout 120 podman pull -q "$base" >/dev/null 2>&1; then
    fail "the base image $base is neither here nor pullable: 'make image-host' makes one with mmdebstrap"
  fi
  mounts=()
  for path in /etc/pip.conf /etc/xdg/pip; do
    [ -e "$path" ] && mounts+=("$path")
  done
  if [ ${#mounts[@]} -gt 0 ]; then
    # The configuration may name a CA bundle and local folders (constraints, find-links): mount those too.
    for word in $(grep -hoE '(/[A-Za-z0-9._-]+)+' /etc/pip.conf /etc/xdg/pip/*.conf 2>/dev/null | sort -u); do
      case "$word" in /etc/pip.conf | /etc/xdg/pip*) ;; *) [ -e "$word" ] && mounts+=("$word") ;; esac
    done
    echo "make image: this host's pip configuration is mounted into the build (read-only): ${mounts[*]}"
    for path in "${mounts[@]}"; do args+=(-v "$path:$path:ro"); done
  fi
fi

echo "make image: building $image with $engine from $context"
start=$(date +%s)
"$engine" "${args[@]}" "$context" || fail "$engine build failed (its output is above)"
size=$("$engine" image inspect --format '{{.Size}}' "$image")
echo "make image: built $image in $(($(date +%s) - start)) s, $(numfmt --to=si "$size")B"
