#!/usr/bin/env bash
# Build a real nginx base image without pulling anything from a registry.
#
# The image is FROM scratch: Debian's nginx binary, the shared libraries `ldd`
# lists for it, mime.types, a passwd/group entry for the non-root user (uid/gid
# 101, like the official nginx image), a writable /tmp and Debian's static busybox
# as /bin/sh and wget (only for container health checks: `sitebuild deploy
# --target swarm` probes /healthz from inside the task, as with the official
# nginx:alpine image). sitebuild renders the complete nginx.conf itself, so
# nothing else from the base is used.
#
# Usage: scripts/offline-base.sh [TAG]        (default tag: sitebuild/nginx:offline)
#        FORCE=1 scripts/offline-base.sh      rebuild even when the image is up to date
# Needs: a running Docker engine; installs Debian's nginx-light and busybox-static
# when missing (apt).
set -euo pipefail

tag="${1:-sitebuild/nginx:offline}"

if ! command -v docker >/dev/null 2>&1; then
  echo "error: the docker CLI is not installed; it is needed to import the base image" >&2
  exit 1
fi

if [ ! -x /usr/sbin/nginx ]; then
  echo "nginx not found at /usr/sbin/nginx: installing Debian's nginx-light" >&2
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nginx-light >/dev/null
  # The package starts a host nginx on port 80; we only want its files.
  $sudo_cmd service nginx stop >/dev/null 2>&1 || true
fi

if ! dpkg -s busybox-static >/dev/null 2>&1; then
  echo "busybox-static not installed: installing it (the health-check client)" >&2
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq busybox-static >/dev/null
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "error: /bin/busybox is not statically linked; install Debian's busybox-static" >&2
  exit 1
fi

if ! /usr/sbin/nginx -V 2>&1 | grep -q -- '--with-http_gzip_static_module'; then
  echo "error: /usr/sbin/nginx lacks gzip_static; install Debian's nginx-light or nginx" >&2
  exit 1
fi

version="$(/usr/sbin/nginx -v 2>&1 | sed 's|.*nginx/||')"
# Layout 2 added busybox; an image of an older layout is rebuilt.
binary_sum="layout2-$(cat /usr/sbin/nginx /bin/busybox | sha256sum | cut -c1-16)"
existing="$(docker image inspect -f '{{index .Config.Labels "dev.sitebuild.nginx-sha256"}}' "$tag" 2>/dev/null || true)"
if [ "$existing" = "$binary_sum" ] && [ "${FORCE:-0}" != "1" ]; then
  echo "$tag is up to date (Debian nginx $version); FORCE=1 rebuilds it"
  exit 0
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/bin" "$root/usr/bin" "$root/usr/sbin" "$root/etc/nginx" "$root/tmp" "$root/var/empty" "$root/usr/share/sitebuild/html"
chmod 1777 "$root/tmp"
cp /usr/sbin/nginx "$root/usr/sbin/nginx"
cp /etc/nginx/mime.types "$root/etc/nginx/mime.types"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
ln -s ../../bin/busybox "$root/usr/bin/wget"

# Every shared object nginx loads, at the path the dynamic loader looks for it.
ldd /usr/sbin/nginx | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }' | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nginx:x:101:101:nginx:/var/empty:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nginx:x:101:
nogroup:x:65534:
GROUP

# Fixed mtimes and owners so the same nginx gives the same layer.
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
  -C "$root" -cf - . |
  docker import \
    --change 'USER 101:101' \
    --change 'EXPOSE 8080' \
    --change 'ENTRYPOINT ["/usr/sbin/nginx", "-e", "stderr", "-g", "daemon off;"]' \
    --change "LABEL org.opencontainers.image.title=sitebuild-nginx-offline org.opencontainers.image.version=$version dev.sitebuild.nginx-sha256=$binary_sum" \
    - "$tag" >/dev/null

echo "built $tag (Debian nginx $version, $(docker image inspect -f '{{.Size}}' "$tag") bytes)"
