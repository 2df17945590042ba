#!/usr/bin/env bash
# Put Docker's compose plugin (`docker compose`, with `watch`) in place for the benchmarks,
# without touching the host's apt sources or state.
#
# When `docker compose version` already answers with a compose that has `watch` (compose >= 2.22),
# nothing is done. Otherwise the docker-compose package of Debian's testing suite (default: forky,
# compose 2.40.x) is fetched with `apt-get download` through a private apt state directory (its own
# sources.list, lists and cache; Release files past Valid-Until accepted, like
# scripts/offline-base.sh) and its plugin binary usr/libexec/docker/cli-plugins/docker-compose is
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

suite="${SUITE:-forky}"
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

for tool in apt-get apt-cache dpkg-deb; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool is not installed (this installer needs a Debian-like host); install Docker's compose plugin >= $min_version by hand" >&2
    exit 1
  fi
done

mirror="${MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
fi
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

# A private apt state of its own (not shared with scripts/offline-base.sh, which empties its debs
# directory), kept between runs.
state="${SITEBUILD_COMPOSE_APT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sitebuild/apt-$suite-compose}"
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/debs"
echo "deb $mirror $suite main" >"$state/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$state/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::Etc::Preferences=/dev/null"
  -o "Dir::Etc::PreferencesParts=/dev/null"
  -o "Dir::State::Lists=$state/lists"
  -o "Dir::State::status=/dev/null"
  -o "Dir::Cache=$state/cache"
  -o "Acquire::Check-Valid-Until=false"
  -o "APT::Sandbox::User=root"
)

if ! apt-get "${apt_opts[@]}" -qq update >"$state/update.log" 2>&1; then
  echo "error: cannot read Debian's $suite suite from $mirror:" >&2
  cat "$state/update.log" >&2
  exit 1
fi
deb_version="$(apt-cache "${apt_opts[@]}" policy docker-compose | awk '/Candidate:/ { print $2; exit }')"
if [ -z "$deb_version" ] || [ "$deb_version" = "(none)" ]; then
  echo "error: no docker-compose package in Debian $suite from $mirror (try SUITE=sid or another MIRROR)" >&2
  if [ -s "$state/update.log" ]; then
    echo "apt-get update said:" >&2
    cat "$state/update.log" >&2
  fi
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$state/debs" && rm -f ./docker-compose_*.deb && apt-get "${apt_opts[@]}" -qq download docker-compose >/dev/null)
deb="$(ls "$state/debs"/docker-compose_*.deb)"
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
