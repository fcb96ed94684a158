#!/usr/bin/env bash
# A stand-in for the base image that certgate's Dockerfile names (node:24-bookworm-slim), for
# machines that reach no container registry, only Debian's packages and the npm registry (the
# development and CI machines here; .ci/run uses it when `docker pull` fails). The stand-in is
# Debian bookworm (debootstrap from the Debian mirror apt uses) + the Node 24 binary the
# project already pins (node_modules/node) + npm + this machine's CA bundle
# (NODE_EXTRA_CA_CERTS, so npm inside `docker build` reaches the registry as the host does).
# It is bigger than the real one (338 MB here: debootstrap leaves 80 MB of apt lists and
# caches and every locale, which the Debian slim images drop); certgate's own layers on top
# are the same on either.
#
# Usage (as root, from the project root after `npm ci`):
#   test/container/base-image.sh [TAG]      # TAG defaults to node:24-bookworm-slim
# It installs docker.io and debootstrap from Debian when missing and starts dockerd when
# none answers (its log: /tmp/dockerd.log). Seen here: 1 to 2.5 min, debootstrap most of it.
set -euo pipefail
tag=${1:-node:24-bookworm-slim}
node_bin=node_modules/node/bin/node
[ -x "$node_bin" ] || { echo "docker-base-image: run from the project root after npm ci ($node_bin missing)" >&2; exit 1; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker-base-image: dockerd did not start (see /tmp/dockerd.log)" >&2; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! docker image inspect local/debian:bookworm >/dev/null 2>&1; then
  # The machine's own Debian mirror, as apt is configured here.
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
  [ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "docker-base-image: no Debian mirror found in the apt sources" >&2; exit 1; }
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 5 "$work/debootstrap.log" >&2; exit 1; }
  tar -C "$work/rootfs" -c . | docker import - local/debian:bookworm >/dev/null
  rm -rf "$work/rootfs"
fi

mkdir -p "$work/ctx"
cp "$node_bin" "$work/ctx/node"
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
cp -r "$npm_dir" "$work/ctx/npm"
cp /etc/ssl/certs/ca-certificates.crt "$work/ctx/ca.crt"
cat >"$work/ctx/Dockerfile" <<'DOCKERFILE'
FROM local/debian:bookworm
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY ca.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s /usr/local/lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
DOCKERFILE
docker build -q -t "$tag" "$work/ctx" >/dev/null
echo "docker-base-image: built $tag ($(docker run --rm "$tag" node --version))"
