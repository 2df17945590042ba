#!/usr/bin/env bash
# Build the sitebuild tool image (sitebuild/sitebuild:<version>) without pulling anything.
#
# The image is FROM scratch (`docker import` of a root made here, like scripts/offline-base.sh):
# the sitebuild binary, the shared libraries `ldd` lists for it and for the OpenSSH client
# (ssh, ssh-keyscan: for ssh:// engines), the CA certificates, Debian's static busybox as
# /bin/sh and the usual applets (CI job scripts, e.g. the GitLab component, need a shell),
# passwd/group, /tmp and /work. ENTRYPOINT sitebuild, WORKDIR /work:
#
#   docker run --rm -v /var/run/docker.sock:/var/run/docker.sock -v "$PWD:/work" \
#     sitebuild/sitebuild:<version> build
#
# Usage: scripts/tool-image.sh [--bin PATH] [TAG]
#   --bin PATH   the sitebuild binary (default: target/release/sitebuild, built when missing)
#   TAG          default: sitebuild/sitebuild:<the binary's version>
# Needs: a running Docker engine; installs Debian's openssh-client, busybox-static and
# ca-certificates when missing (apt).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=""
tag=""
while [ "$#" -gt 0 ]; do
  case "$1" in
    --bin)
      bin="${2:?--bin needs a path}"
      shift 2
      ;;
    -h | --help)
      sed -n '2,19p' "$0"
      exit 0
      ;;
    *)
      tag="$1"
      shift
      ;;
  esac
done

if ! command -v docker >/dev/null 2>&1; then
  echo "error: the docker CLI is not installed; it is needed to import the image" >&2
  exit 1
fi

if [ -z "$bin" ]; then
  bin="${CARGO_TARGET_DIR:-target}/release/sitebuild"
  if [ ! -x "$bin" ]; then
    echo "building $bin (cargo build --release --locked)" >&2
    cargo build --release --locked
  fi
fi
if [ ! -x "$bin" ]; then
  echo "error: $bin is not an executable sitebuild binary" >&2
  exit 1
fi
version="$("$bin" --version | awk '{ print $2 }')"
tag="${tag:-sitebuild/sitebuild:$version}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
[ -x /usr/bin/ssh ] && [ -x /usr/bin/ssh-keyscan ] || missing+=(openssh-client)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "error: /bin/busybox is not statically linked; install Debian's busybox-static" >&2
  exit 1
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

mkdir -p "$root/usr/local/bin" "$root/usr/bin" "$root/bin" "$root/etc/ssl/certs" \
  "$root/tmp" "$root/work" "$root/root/.ssh" "$root/var/run"
chmod 1777 "$root/tmp"
chmod 700 "$root/root" "$root/root/.ssh"
cp "$bin" "$root/usr/local/bin/sitebuild"
strip "$root/usr/local/bin/sitebuild" 2>/dev/null || true
cp /usr/bin/ssh /usr/bin/ssh-keyscan "$root/usr/bin/"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /bin/busybox "$root/bin/busybox"
# Every applet as a link in /bin, unless the image already has that program.
for applet in $(/bin/busybox --list); do
  if [ ! -e "$root/bin/$applet" ] && [ ! -e "$root/usr/bin/$applet" ] && [ ! -e "$root/usr/local/bin/$applet" ]; then
    ln -s busybox "$root/bin/$applet"
  fi
done

# Every shared object the binaries load, at the path the dynamic loader looks for it.
for exe in "$bin" /usr/bin/ssh /usr/bin/ssh-keyscan; do
  ldd "$exe" | awk '/=>/ { print $3 } !/=>/ && $1 ~ /^\// { print $1 }'
done | sort -u | while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# Fixed mtimes and owners so the same inputs give the same layer.
tar --sort=name --mtime='2000-01-01 00:00:00Z' --owner=0 --group=0 --numeric-owner \
  -C "$root" -cf - . |
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/root SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'WORKDIR /work' \
    --change 'ENTRYPOINT ["/usr/local/bin/sitebuild"]' \
    --change "LABEL org.opencontainers.image.title=sitebuild org.opencontainers.image.version=$version org.opencontainers.image.description=sitebuild-tool-image" \
    - "$tag" >/dev/null

echo "built $tag (sitebuild $version, $(docker image inspect -f '{{.Size}}' "$tag") bytes)"
