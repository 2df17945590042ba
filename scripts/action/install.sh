#!/usr/bin/env bash
# Install step of the composite action (action.yml): sitebuild once per runner, no Rust needed in
# the user's repository.
#
#   install.sh find      outputs version, cache-key, dir (tool-cache directory), and found=true
#                        plus bin when a sitebuild of exactly this version is already on PATH
#   install.sh install   outputs bin: the found binary, else the cached one in dir, else a
#                        release binary (action ref v*, checksum verified), else
#                        `cargo install --locked --path <action checkout> --root <dir>`
#
# Environment: SB_ACTION_PATH (the action's checkout); for install also SB_FOUND, SB_FOUND_BIN,
# SB_INSTALL_DIR, SB_VERSION, SB_ACTION_REF, SB_ACTION_REPOSITORY.
set -euo pipefail

out="${GITHUB_OUTPUT:-/dev/stdout}"
src="${SB_ACTION_PATH:?SB_ACTION_PATH is required (the action checkout)}"

# "sitebuild 0.1.0" -> "0.1.0"; empty when the binary does not run.
version_of() { "$1" --version 2>/dev/null | awk '{ print $2 }' || true; }

find_cmd() {
  local version key dir bin
  version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$src/Cargo.toml" | head -n 1)"
  [ -n "$version" ] || { echo "::error::no version in $src/Cargo.toml" >&2; exit 1; }
  # The cache key follows the action's content (its commit), not just the version number.
  key="$(cd "$src" && find Cargo.toml Cargo.lock src nginx deploy -type f 2>/dev/null | LC_ALL=C sort |
    xargs sha256sum | sha256sum | cut -c1-16)"
  dir="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/sitebuild/$version-$key"
  {
    echo "version=$version"
    echo "cache-key=sitebuild-${RUNNER_OS:-Linux}-${RUNNER_ARCH:-$(uname -m)}-$version-$key"
    echo "dir=$dir"
  } >>"$out"
  bin="$(command -v sitebuild || true)"
  if [ -n "$bin" ] && [ "$(version_of "$bin")" = "$version" ]; then
    echo "using $bin (sitebuild $version, already on PATH)"
    { echo "found=true"; echo "bin=$bin"; } >>"$out"
  else
    echo "found=false" >>"$out"
  fi
}

# A release binary for a v* action ref, verified against the release's SHA256SUMS.
from_release() {
  local dir="$1" ref="${SB_ACTION_REF:-}" repo="${SB_ACTION_REPOSITORY:-}" arch asset base tmp
  case "$ref" in v[0-9]*) ;; *) return 1 ;; esac
  [ -n "$repo" ] && command -v curl >/dev/null 2>&1 || return 1
  case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) return 1 ;;
  esac
  asset="sitebuild-$ref-$arch-unknown-linux-gnu.tar.gz"
  base="https://github.com/$repo/releases/download/$ref"
  tmp="$(mktemp -d)"
  if curl -fsSL --retry 2 -o "$tmp/$asset" "$base/$asset" &&
    curl -fsSL --retry 2 -o "$tmp/SHA256SUMS" "$base/SHA256SUMS" &&
    (cd "$tmp" && grep " $asset\$" SHA256SUMS | sha256sum -c --quiet -); then
    mkdir -p "$dir/bin"
    tar -xzf "$tmp/$asset" -C "$dir/bin" sitebuild
    rm -rf "$tmp"
    echo "installed the release binary $asset"
    return 0
  fi
  rm -rf "$tmp"
  echo "no usable release binary for $ref; building from source" >&2
  return 1
}

install_cmd() {
  local dir="${SB_INSTALL_DIR:?}" version="${SB_VERSION:?}" bin
  if [ "${SB_FOUND:-false}" = "true" ]; then
    echo "bin=$SB_FOUND_BIN" >>"$out"
    return
  fi
  bin="$dir/bin/sitebuild"
  if [ -x "$bin" ] && [ "$(version_of "$bin")" = "$version" ]; then
    echo "using the cached $bin"
  elif ! from_release "$dir"; then
    if ! command -v cargo >/dev/null 2>&1; then
      echo "::error title=sitebuild not installed::no release binary and no cargo on this runner; install Rust (e.g. rustup) before this step" >&2
      exit 1
    fi
    cargo install --locked --quiet --path "$src" --root "$dir"
  fi
  [ "$(version_of "$bin")" = "$version" ] || {
    echo "::error::$bin does not report version $version" >&2
    exit 1
  }
  echo "$dir/bin" >>"${GITHUB_PATH:-/dev/null}"
  echo "bin=$bin" >>"$out"
}

case "${1:-}" in
  find) find_cmd ;;
  install) install_cmd ;;
  *)
    echo "usage: $0 find|install" >&2
    exit 2
    ;;
esac
