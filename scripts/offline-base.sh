#!/usr/bin/env bash
# Build a real nginx base image without pulling anything from a registry and without touching
# the host's apt state.
#
# The packages come from Debian's testing suite (default: forky), which carries the current
# stable nginx line (1.30.x, the same line as the official nginx:1.30.x-alpine image), fetched
# with `apt-get download` through a private apt state directory (its own sources.list, lists
# and cache) and unpacked with `dpkg-deb -x` into a scratch root. The image is FROM scratch and
# holds only:
#   - /usr/sbin/nginx and the shared libraries it loads (resolved by the suite's own dynamic
#     loader, so nothing from the host leaks in), plus /etc/nginx/mime.types;
#   - the brotli modules at a stable path, for `load_module` (sitebuild does not load them yet):
#       /usr/lib/nginx/modules/ngx_http_brotli_filter_module.so
#       /usr/lib/nginx/modules/ngx_http_brotli_static_module.so
#     (recorded in the label dev.sitebuild.nginx-modules) with libbrotli;
#   - passwd/group entries for the non-root user (uid/gid 101, like the official nginx image);
#   - a writable /tmp and Debian's static busybox as /bin/sh and wget (only for container health
#     checks: `sitebuild deploy --target swarm` probes /healthz from inside the task, as with the
#     official nginx:alpine image).
# sitebuild renders the complete nginx.conf and ships its own mime.types, and sets the command of
# every container it creates, so the image has no CMD or ENTRYPOINT (like any `docker import`).
#
# Idempotent: the label dev.sitebuild.base-sha256 is a hash of the package versions and of this
# script; an image with the same hash is kept. The label org.opencontainers.image.version records
# the exact nginx version.
#
# Usage: scripts/offline-base.sh [TAG]        (default tag: sitebuild/nginx:offline)
#        FORCE=1 scripts/offline-base.sh      rebuild even when the image is up to date
#        SUITE=sid MIRROR=http://… scripts/offline-base.sh
# Needs: a running Docker engine, apt-get, dpkg-deb and network access to the Debian mirror.
set -euo pipefail

tag="${1:-sitebuild/nginx:offline}"
min_version="1.27.4" # keepalive_min_timeout (the edge's zero-drop reloads)

if ! command -v docker >/dev/null 2>&1; then
  echo "error: the docker CLI is not installed; it is needed to import the base image" >&2
  exit 1
fi
# shellcheck source=scripts/lib/debian-suite.sh
. "$(dirname "$0")/lib/debian-suite.sh"
suite_apt_init

# nginx, its libraries (Depends of nginx and of the modules), the brotli modules, busybox.
packages=(nginx nginx-common libc6 libcrypt1 libpcre2-8-0 libssl3t64 libzstd1 zlib1g libbrotli1
  libnginx-mod-http-brotli-filter libnginx-mod-http-brotli-static busybox-static)
# One apt-cache call (each one parses the whole suite's package list).
policy="$(apt-cache "${apt_opts[@]}" policy "${packages[@]}")"
candidate() { awk -v p="$1:" '$1 == p { found = 1 } found && /Candidate:/ { print $2; exit }' <<<"$policy"; }
versions=""
for p in "${packages[@]}"; do
  v="$(candidate "$p")"
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    echo "error: Debian $suite has no package $p" >&2
    exit 1
  fi
  versions+="$p=$v "
done
nginx_deb="$(candidate nginx)"
nginx_upstream="${nginx_deb%%-*}"
nginx_upstream="${nginx_upstream#*:}"
if [ "$(printf '%s\n%s\n' "$min_version" "$nginx_upstream" | sort -V | head -n1)" != "$min_version" ]; then
  echo "error: Debian $suite offers nginx $nginx_upstream; sitebuild needs nginx >= $min_version (keepalive_min_timeout). Use SUITE=forky or SUITE=sid." >&2
  exit 1
fi

base_sum="$(printf '%s\n' "$versions" | cat - "$0" | sha256sum | cut -c1-16)"
existing="$(docker image inspect -f '{{index .Config.Labels "dev.sitebuild.base-sha256"}}' "$tag" 2>/dev/null || true)"
if [ "$existing" = "$base_sum" ] && [ "${FORCE:-0}" != "1" ]; then
  echo "$tag is up to date (Debian $suite nginx $nginx_deb); FORCE=1 rebuilds it"
  exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
unpacked="$scratch/unpacked"
root="$scratch/root"
mkdir -p "$unpacked" "$root"

(cd "$state/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download "${packages[@]}" >/dev/null)
for deb in "$state/debs"/*.deb; do
  dpkg-deb -x "$deb" "$unpacked"
done

# Debian's own dynamic loader lists what nginx and the modules load, from the unpacked tree only.
libdir=usr/lib/x86_64-linux-gnu
loader="$unpacked/usr/lib64/ld-linux-x86-64.so.2"
if [ ! -x "$loader" ]; then
  echo "error: the unpacked libc6 has no usr/lib64/ld-linux-x86-64.so.2 (only amd64 is supported)" >&2
  exit 1
fi
modules=(usr/lib/nginx/modules/ngx_http_brotli_filter_module.so usr/lib/nginx/modules/ngx_http_brotli_static_module.so)
needed="$scratch/needed"
: >"$needed"
for elf in usr/sbin/nginx "${modules[@]}"; do
  if ! out="$("$loader" --library-path "$unpacked/$libdir" --list "$unpacked/$elf" 2>&1)"; then
    echo "error: cannot resolve the libraries of $elf: $out" >&2
    exit 1
  fi
  if grep -q 'not found' <<<"$out"; then
    echo "error: $elf needs a library that is not in the package list:" >&2
    grep 'not found' <<<"$out" >&2
    exit 1
  fi
  # Anything resolved outside the unpacked tree would come from the host: refuse it.
  outside="$(awk -v u="$unpacked/" '/=>/ && $3 ~ /^\// && index($3, u) != 1 && $1 !~ /ld-linux/ { print $1 " => " $3 }' <<<"$out")"
  if [ -n "$outside" ]; then
    echo "error: $elf needs libraries that are not in the package list (add their packages):" >&2
    echo "$outside" >&2
    exit 1
  fi
  awk '/=>/ { print $1 }' <<<"$out" >>"$needed"
done

mkdir -p "$root/bin" "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib64" "$root/$libdir" \
  "$root/usr/lib/nginx/modules" "$root/etc/nginx" "$root/tmp" "$root/var/empty" "$root/usr/share/sitebuild/html"
chmod 1777 "$root/tmp"
# The merged-/usr layout Debian binaries expect (their interpreter is /lib64/ld-linux-x86-64.so.2).
ln -s usr/lib "$root/lib"
ln -s usr/lib64 "$root/lib64"
cp "$unpacked/usr/sbin/nginx" "$root/usr/sbin/nginx"
cp "$unpacked/etc/nginx/mime.types" "$root/etc/nginx/mime.types"
cp "${modules[@]/#/$unpacked/}" "$root/usr/lib/nginx/modules/"
cp -L "$loader" "$root/usr/lib64/ld-linux-x86-64.so.2"
sort -u "$needed" | while read -r lib; do
  case "$lib" in */ld-linux* | ld-linux* | linux-vdso*) continue ;; esac
  cp -L "$unpacked/$libdir/$lib" "$root/$libdir/$lib"
done
cp "$unpacked/usr/bin/busybox" "$root/bin/busybox"
if ("$loader" --verify "$root/bin/busybox") >/dev/null 2>&1; then
  echo "error: busybox from busybox-static is not statically linked" >&2
  exit 1
fi
ln -s busybox "$root/bin/sh"
ln -s ../../bin/busybox "$root/usr/bin/wget"

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

# The binary must run in that root and have what sitebuild relies on.
version_out="$("$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$root/$libdir" "$root/usr/sbin/nginx" -V 2>&1)"
version="$(sed -n 's|^nginx version: nginx/||p' <<<"$version_out")"
if [ "$version" != "$nginx_upstream" ]; then
  echo "error: the unpacked nginx reports '$version', expected $nginx_upstream:" >&2
  echo "$version_out" >&2
  exit 1
fi
if ! grep -q -- '--with-http_gzip_static_module' <<<"$version_out"; then
  echo "error: Debian $suite's nginx $version lacks gzip_static" >&2
  exit 1
fi

# Fixed mtimes and owners so the same packages give the same layer. No CMD/ENTRYPOINT: sitebuild
# names the command of every container it creates.
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
  -C "$root" -cf - . |
  docker import \
    --change 'USER 101:101' \
    --change 'EXPOSE 8080' \
    --change "LABEL org.opencontainers.image.title=sitebuild-nginx-offline org.opencontainers.image.version=$version dev.sitebuild.nginx-version=$version dev.sitebuild.nginx-debian=$nginx_deb dev.sitebuild.suite=$suite dev.sitebuild.base-sha256=$base_sum dev.sitebuild.nginx-modules=/usr/lib/nginx/modules" \
    - "$tag" >/dev/null

echo "built $tag (Debian $suite nginx $nginx_deb, $(docker image inspect -f '{{.Size}}' "$tag") bytes)"
