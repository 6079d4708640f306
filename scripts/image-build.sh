#!/usr/bin/env bash
# Builds the Bulwark container image on a machine that reaches Debian's mirror and the npm
# registry but no image registry:
#   1. debootstrap a Debian bookworm root file system (minbase) and `docker import` it as the local
#      base image BASE (default bulwark/debian:bookworm; kept and reused once made);
#   2. build the Dockerfile against it (--build-arg BASE_IMAGE=BASE, the host's network for apt/npm);
#   3. unless --no-smoke: run the image with a read-only root file system, a tmpfs /tmp, an audit
#      volume and no capabilities, and check /health, /ready and the HEALTHCHECK status.
#
#   scripts/image-build.sh [--base-only] [--no-smoke] [--rebuild-base]
#   env: IMAGE (bulwark:local), BASE (bulwark/debian:bookworm), MIRROR (http://deb.debian.org/debian),
#        WORK (/var/tmp/bulwark-image: the root file system and logs), SMOKE_PORT (18765),
#        BUILD_CA_CERTS (PEM; default: the host's /usr/local/share/ca-certificates/*.crt)
#
# Needs root, debootstrap and a running Docker engine (dockerd). Everything heavy runs under
# `nice -n 19`. With a registry, a plain `docker build -t bulwark:local .` does the same (the
# Dockerfile's default BASE_IMAGE is debian:bookworm-slim).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-bulwark:local}
BASE=${BASE:-bulwark/debian:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-/var/tmp/bulwark-image}
SMOKE_PORT=${SMOKE_PORT:-18765}
base_only=0
smoke=1
rebuild_base=0
for a in "$@"; do
  case $a in
    --base-only) base_only=1 ;;
    --no-smoke) smoke=0 ;;
    --rebuild-base) rebuild_base=1 ;;
    *)
      echo "usage: $0 [--base-only] [--no-smoke] [--rebuild-base]" >&2
      exit 2
      ;;
  esac
done

die() {
  echo "image-build: error: $*" >&2
  exit 1
}
step() { echo "image-build: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and docker import need it)"
command -v docker >/dev/null 2>&1 || die "docker (the client) is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers on $(docker context inspect --format '{{.Endpoints.docker.Host}}' 2>/dev/null || echo the default socket): start dockerd (Debian: apt-get install docker.io; dockerd &)"
mkdir -p "$WORK"

# --- 1. the base image ------------------------------------------------------------------------
if [ "$rebuild_base" -eq 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
  rootfs=$WORK/rootfs
  rm -rf "$rootfs"
  step "debootstrap bookworm (minbase) into $rootfs from $MIRROR (log: $WORK/debootstrap.log)..."
  if ! nice -n 19 debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
    tail -n 20 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (output above)"
  fi
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  # Docker images do without these: no daemons start at install, no docs, no apt caches.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  printf 'path-exclude /usr/share/doc/*\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\n' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  step "docker import -> $BASE"
  tar --numeric-owner -C "$rootfs" -c . |
    nice -n 19 docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' \
      --message "debootstrap --variant=minbase bookworm $MIRROR" - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi
step "base image $BASE: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$BASE")"
[ "$base_only" -eq 1 ] && exit 0

# --- 2. the image -----------------------------------------------------------------------------
build=(docker build)
if docker buildx version >/dev/null 2>&1; then
  build=(docker buildx build --load)
else
  export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin on this client
fi
# A network that re-signs TLS (an inspecting egress proxy) has its CA among the host's local CAs:
# the build stage trusts them for npm (BUILD_CA_CERTS; never copied into the runtime image).
ca_args=()
if [ -z "${BUILD_CA_CERTS+x}" ]; then
  BUILD_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
fi
if [ -n "$BUILD_CA_CERTS" ]; then
  ca_args=(--build-arg "BUILD_CA_CERTS=$BUILD_CA_CERTS")
  step "the build stage trusts $(printf '%s\n' "$BUILD_CA_CERTS" | grep -c 'BEGIN CERTIFICATE') local CA certificate(s) of this host (BUILD_CA_CERTS)"
fi
step "${build[*]} --network host --build-arg BASE_IMAGE=$BASE -t $IMAGE . (log: $WORK/build.log)"
start=$(date +%s)
if ! nice -n 19 "${build[@]}" --network host --build-arg "BASE_IMAGE=$BASE" "${ca_args[@]}" -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
  tail -n 40 "$WORK/build.log" >&2
  die "docker build failed after $(($(date +%s) - start)) s (output above; whole log in $WORK/build.log)"
fi
step "built $IMAGE in $(($(date +%s) - start)) s: $(docker image inspect --format '{{.Id}} {{.Size}} bytes' "$IMAGE")"
[ "$smoke" -eq 1 ] || exit 0

# --- 3. smoke run -----------------------------------------------------------------------------
# Host networking: the server listens on loopback of this machine only (--http 127.0.0.1:PORT).
name=bulwark-smoke-$$
volume=bulwark-smoke-audit-$$
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT
docker volume create "$volume" >/dev/null
step "docker run --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges --network host $IMAGE serve --http 127.0.0.1:$SMOKE_PORT"
docker run -d --name "$name" --read-only --tmpfs /tmp:rw,nosuid,nodev,size=64m --cap-drop ALL \
  --security-opt no-new-privileges --network host -e "BULWARK_PORT=$SMOKE_PORT" \
  -v "$volume:/var/lib/bulwark/audit" "$IMAGE" \
  serve --config /etc/bulwark/bulwark.yaml --http "127.0.0.1:$SMOKE_PORT" >/dev/null
probe() { node -e "require('http').get('http://127.0.0.1:$SMOKE_PORT$1',(r)=>{let b='';r.on('data',(c)=>b+=c);r.on('end',()=>{console.log(r.statusCode+' '+b.slice(0,400));process.exit(r.statusCode===200?0:1)})}).on('error',(e)=>{console.log('error '+e.message);process.exit(1)})"; }
ok=0
for _ in $(seq 1 60); do
  if probe /health >/dev/null 2>&1; then
    ok=1
    break
  fi
  sleep 1
done
if [ "$ok" -ne 1 ]; then
  docker logs "$name" 2>&1 | tail -n 30 >&2
  die "the container did not answer /health on 127.0.0.1:$SMOKE_PORT within 60 s (its log above)"
fi
step "/health: $(probe /health)"
step "/ready:  $(probe /ready || true)"
health=unknown
for _ in $(seq 1 40); do
  health=$(docker inspect --format '{{.State.Health.Status}}' "$name")
  [ "$health" = starting ] || break
  sleep 1
done
step "HEALTHCHECK status: $health; user: $(docker inspect --format '{{.Config.User}}' "$name"); read-only rootfs: $(docker inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$name")"
[ "$health" = healthy ] || {
  docker inspect --format '{{json .State.Health}}' "$name" >&2
  die "HEALTHCHECK reports $health"
}
step "smoke run passed"
