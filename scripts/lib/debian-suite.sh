# shellcheck shell=bash
# Sourced by scripts that fetch packages from another Debian suite (default: forky) without
# touching the host's apt state: a private state directory (its own sources.list, lists and
# cache), `apt-get download`, `dpkg-deb -x`. Kept between runs, so a re-run needs one
# `apt-get update` of one suite.
#
#   suite_apt_init        sets $suite, $mirror, $state and the array apt_opts, runs apt-get update
#                         (SUITE, MIRROR, SITEBUILD_APT_DIR override the defaults)
#   suite_candidate P     the version apt would take of package P ("" when the suite has none)

suite_apt_init() {
  local tool
  for tool in apt-get apt-cache dpkg-deb; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "error: $tool is not installed (this script needs a Debian-like host)" >&2
      exit 1
    fi
  done
  suite="${SUITE:-forky}"
  mirror="${MIRROR:-}"
  if [ -z "$mirror" ]; then
    mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  fi
  if [ -z "$mirror" ]; then
    mirror="$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  state="${SITEBUILD_APT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sitebuild/apt-$suite}"
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
  # Testing's and sid's Release files may be past Valid-Until here (checked off above).
  if ! apt-get "${apt_opts[@]}" -qq update >"$state/update.log" 2>&1; then
    echo "error: cannot read Debian's $suite suite from $mirror:" >&2
    cat "$state/update.log" >&2
    exit 1
  fi
}

suite_candidate() {
  apt-cache "${apt_opts[@]}" policy "$1" | awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}
