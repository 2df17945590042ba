#!/usr/bin/env bash
# Put Docker's compose plugin (`docker compose`, with `watch`) in place for the benchmarks,
# without touching the host's apt sources or state.
#
# When `docker compose version` already answers with a compose that has `watch` (compose >= 2.22),
# nothing is done. Otherwise the docker-compose package of Debian's testing suite (default: forky,
# compose 2.40.x) is fetched with `apt-get download` through a private apt state directory (its own
# sources.list, lists and cache; Release files past Valid-Until accepted: scripts/lib/debian-suite.sh,
# shared with scripts/offline-base.sh) and its plugin binary usr/libexec/docker/cli-plugins/docker-compose is
# copied to ~/.docker/cli-plugins/docker-compose (the per-user plugin directory of the docker CLI).
# compose 2.40 syncs files into containers through the engine's archive API, so the target image
# needs no `tar` (the offline nginx base has none).
#
# Idempotent; prints what it found or installed.
#
# Usage: bench/lib/compose.sh
#        SUITE=sid MIRROR=http://… bench/lib/compose.sh
#        DOCKER_CONFIG=/some/dir bench/lib/compose.sh    (installs into /some/dir/cli-plugins)
# Needs: the docker CLI, apt-get, apt-cache, dpkg-deb and network access to the Debian mirror.
set -euo pipefail

min_version="2.22.0" # `docker compose watch` left its experimental state in 2.22

compose_version() {
  docker compose version --short 2>/dev/null | sed 's/^v//'
}
new_enough() { # $1 >= min_version
  [ "$(printf '%s\n%s\n' "$min_version" "$1" | sort -V | head -n1)" = "$min_version" ]
}

if ! command -v docker >/dev/null 2>&1; then
  echo "error: the docker CLI is not installed; the compose plugin is a docker CLI plugin" >&2
  exit 1
fi

have="$(compose_version || true)"
if [ -n "$have" ] && new_enough "$have"; then
  echo "docker compose $have already installed ($(docker info --format '{{range .ClientInfo.Plugins}}{{if eq .Name "compose"}}{{.Path}}{{end}}{{end}}' 2>/dev/null || echo 'path unknown'))"
  exit 0
fi

# shellcheck source=scripts/lib/debian-suite.sh
. "$(dirname "$0")/../../scripts/lib/debian-suite.sh"
suite_apt_init
deb_version="$(suite_candidate docker-compose)"
if [ -z "$deb_version" ]; then
  echo "error: no docker-compose package in Debian $suite from $mirror (try SUITE=sid or another MIRROR)" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/debs"
(cd "$scratch/debs" && apt-get "${apt_opts[@]}" -qq download docker-compose >/dev/null)
deb="$(ls "$scratch/debs"/docker-compose_*.deb)"
dpkg-deb -x "$deb" "$scratch/root"
plugin="$scratch/root/usr/libexec/docker/cli-plugins/docker-compose"
if [ ! -x "$plugin" ]; then
  echo "error: $deb has no usr/libexec/docker/cli-plugins/docker-compose (its layout changed)" >&2
  exit 1
fi

dest_dir="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$dest_dir"
# Write next to the target and rename, so a concurrent `docker compose` never sees half a binary.
install -m 0755 "$plugin" "$dest_dir/.docker-compose.$$"
mv -f "$dest_dir/.docker-compose.$$" "$dest_dir/docker-compose"

now="$(compose_version || true)"
if [ -z "$now" ] || ! new_enough "$now"; then
  echo "error: installed $dest_dir/docker-compose from $(basename "$deb"), but \`docker compose version\` reports '${now:-nothing}' (need >= $min_version; another plugin directory may take precedence: see \`docker info\`)" >&2
  exit 1
fi
echo "installed docker compose $now to $dest_dir/docker-compose (Debian $suite docker-compose $deb_version${have:+, replacing $have})"
