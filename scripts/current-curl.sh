#!/usr/bin/env bash
# Put a current curl (Debian forky's, >= 8.5) beside the host's, for the suite's HTTP/2 load.
#
# Why: curl before 8.5.0 does not retry the streams a server's GOAWAY refused (curl PR #12054,
# issue #11859): a connection that reaches an nginx worker just as a reload retires it ends with
# `curl: (16) Error in the HTTP2 framing layer`, although nginx answered correctly (GOAWAY with
# the last stream it processed). Debian bookworm ships curl 7.88; measured here against a plain
# nginx reloaded every 0.2 s: 19 of 1 424 runs failed with 7.88.1, 0 of 1 388 with 8.22.0.
# Browsers and current curl retry; the soak measures the edge with a client that does.
#
# The packages (curl, libcurl and their libraries, the suite's libc and dynamic loader) are
# unpacked with `dpkg-deb -x` under DIR/root, nothing is installed on the host; DIR/curl runs
# the suite's binary with the suite's loader and libraries. Idempotent: a DIR/curl that runs is
# kept unless the suite has a newer curl.
#
# Usage: scripts/current-curl.sh [DIR]   (default: $XDG_CACHE_HOME/sitebuild/curl-<suite>)
#        prints the path of the wrapper on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/debian-suite.sh
. scripts/lib/debian-suite.sh
suite_apt_init

dir="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/sitebuild/curl-$suite}"
version="$(suite_candidate curl)"
if [ -z "$version" ]; then
  echo "error: Debian $suite has no curl package" >&2
  exit 1
fi
if [ -x "$dir/curl" ] && [ "$(cat "$dir/version" 2>/dev/null)" = "$version" ] && "$dir/curl" --version >/dev/null 2>&1; then
  echo "curl $version from Debian $suite is already in $dir" >&2
  echo "$dir/curl"
  exit 0
fi

# curl and what it needs, as the suite resolves it (Depends and Pre-Depends, recursively).
mapfile -t packages < <(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances curl | grep -E '^[a-z0-9][a-z0-9.+-]*$' | sort -u)
rm -rf "$dir.new"
mkdir -p "$dir.new/root" "$dir.new/debs"
(cd "$dir.new/debs" && apt-get "${apt_opts[@]}" -qq download "${packages[@]}" >/dev/null)
for deb in "$dir.new/debs"/*.deb; do
  dpkg-deb -x "$deb" "$dir.new/root"
done
rm -rf "$dir.new/debs"
cat >"$dir.new/curl" <<'WRAPPER'
#!/bin/sh
# curl from another Debian suite, run with that suite's dynamic loader and libraries.
root="$(dirname "$(readlink -f "$0")")/root"
exec "$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$root/usr/lib/x86_64-linux-gnu" \
  "$root/usr/bin/curl" "$@"
WRAPPER
chmod +x "$dir.new/curl"
echo "$version" >"$dir.new/version"
if ! "$dir.new/curl" --version >/dev/null; then
  echo "error: the unpacked curl $version does not run (see above)" >&2
  exit 1
fi
rm -rf "$dir"
mv "$dir.new" "$dir"
echo "installed curl $version from Debian $suite in $dir ($(du -sh "$dir" | cut -f1))" >&2
echo "$dir/curl"
