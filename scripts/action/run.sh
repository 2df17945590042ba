#!/usr/bin/env bash
# Run step of the composite action (action.yml): one sitebuild command, with the remote engine's
# SSH setup (no trust on first use unless asked for, loudly) and the action's outputs.
#
# Environment (from the action's inputs): SB_BIN, SB_COMMAND, SB_PROJECT_DIR, SB_REGISTRY,
# SB_TAGS, SB_IMAGE, SB_DOCKER_HOST, SB_SSH_KEY, SB_KNOWN_HOSTS, SB_TOFU, SB_BASE_IMAGE, SB_PORT, SB_BIND,
# SB_PREVIEW_NAME, SB_PR_NUMBER, SB_ARGS, SITEBUILD_REGISTRY_USER, SITEBUILD_REGISTRY_PASSWORD.
set -euo pipefail

fail() {
  # $1: annotation title, $2: message (an error annotation on GitHub, plain text elsewhere).
  if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::error title=$1::$2"
  fi
  echo "error: $2" >&2
  exit 1
}

sb="${SB_BIN:-sitebuild}"
[ -n "$sb" ] || sb=sitebuild
cmd="${SB_COMMAND:-deploy}"

# ssh://[user@]host[:port][/path] -> host and port (22 when none is given).
ssh_setup() {
  local rest host port
  rest="${SB_DOCKER_HOST#ssh://}"
  rest="${rest%%/*}"
  rest="${rest#*@}"
  host="${rest%%:*}"
  port=22
  if [ "$rest" != "$host" ]; then port="${rest#*:}"; fi
  mkdir -p ~/.ssh
  chmod 700 ~/.ssh
  if [ -n "${SB_KNOWN_HOSTS:-}" ]; then
    printf '%s\n' "$SB_KNOWN_HOSTS" >>~/.ssh/known_hosts
  elif [ "${SB_TOFU:-false}" = "true" ]; then
    local msg="ssh-trust-on-first-use is set: trusting whatever host key $host:$port presents now (ssh-keyscan). A machine in the middle could take over this deploy. Set known-hosts instead."
    if [ "${GITHUB_ACTIONS:-}" = "true" ]; then echo "::warning title=SSH host key trusted on first use::$msg"; fi
    echo "WARNING: $msg" >&2
    ssh-keyscan -p "$port" "$host" >>~/.ssh/known_hosts 2>/dev/null ||
      fail "ssh-keyscan failed" "cannot read the host key of $host:$port"
  else
    fail "known_hosts required for $host" "docker-host is $SB_DOCKER_HOST but no known-hosts was given, and sitebuild does not trust a host key on first use. On a machine you trust run: ssh-keyscan -p $port $host — check the key (ssh-keygen -lf <file>), store the output as a repository secret (e.g. SITEBUILD_KNOWN_HOSTS) and pass it to the action as known-hosts: \${{ secrets.SITEBUILD_KNOWN_HOSTS }}. (To accept any key instead, set ssh-trust-on-first-use: true; not recommended.)"
  fi
  if [ -n "${SB_SSH_KEY:-}" ]; then
    printf '%s\n' "$SB_SSH_KEY" >~/.ssh/sitebuild_deploy
    chmod 600 ~/.ssh/sitebuild_deploy
    printf 'Host %s\n  IdentityFile ~/.ssh/sitebuild_deploy\n  StrictHostKeyChecking yes\n' "$host" >>~/.ssh/config
  else
    printf 'Host %s\n  StrictHostKeyChecking yes\n' "$host" >>~/.ssh/config
  fi
  chmod 600 ~/.ssh/config
}

case "${SB_DOCKER_HOST:-}" in
  "") ;;
  ssh://*) ssh_setup ;;
  *) ;;
esac
if [ -n "${SB_DOCKER_HOST:-}" ]; then export DOCKER_HOST="$SB_DOCKER_HOST"; fi
if [ -n "${SB_BASE_IMAGE:-}" ]; then export SITEBUILD_BASE_IMAGE="$SB_BASE_IMAGE"; fi
if [ -n "${SB_REGISTRY:-}" ]; then export SITEBUILD_REGISTRY="$SB_REGISTRY"; fi

preview=""
case "$cmd" in
  preview | preview-down)
    # A sitebuild older than preview deploys (`deploy --preview`, `down --preview`): say so
    # instead of failing on an unknown argument.
    if ! "$sb" deploy --help 2>/dev/null | grep -q -- '--preview'; then
      fail "preview not available" "command $cmd: $("$sb" --version 2>/dev/null || echo this sitebuild) has no preview deploys; install the sitebuild of this action's version."
    fi
    preview="${SB_PREVIEW_NAME:-}"
    if [ -z "$preview" ]; then
      [ -n "${SB_PR_NUMBER:-}" ] ||
        fail "no preview name" "command $cmd needs a pull request event (the preview is named pr-<number>) or the preview-name input"
      preview="pr-$SB_PR_NUMBER"
    fi
    ;;
esac

args=(--dir "${SB_PROJECT_DIR:-.}")
case "$cmd" in
  build) args+=(build) ;;
  push)
    [ -n "${SB_REGISTRY:-}" ] || fail "no registry" "command push needs the registry input (a repository without tag, e.g. ghcr.io/owner/site)"
    args+=(push --to "$SB_REGISTRY")
    read -ra tags <<<"${SB_TAGS:-}"
    for t in "${tags[@]}"; do args+=(--tag "$t"); done
    ;;
  deploy | preview)
    args+=(deploy)
    if [ -n "${SB_IMAGE:-}" ]; then args+=(--image "$SB_IMAGE"); fi
    # The port input is production's; a preview gets its own (or its preview_domain name).
    if [ -n "${SB_PORT:-}" ] && [ -z "$preview" ]; then args+=(--port "$SB_PORT"); fi
    if [ -n "${SB_BIND:-}" ]; then args+=(--bind "$SB_BIND"); fi
    if [ -n "$preview" ]; then args+=(--preview "$preview"); fi
    ;;
  preview-down) args+=(down --preview "$preview") ;;
  *) fail "unknown command" "command must be build, push, deploy, preview or preview-down, not '$cmd'" ;;
esac
read -ra extra <<<"${SB_ARGS:-}"
args+=("${extra[@]}")

# sitebuild writes its outputs to $GITHUB_OUTPUT: collect them to derive `changed`, then pass
# them all on.
real_out="${GITHUB_OUTPUT:-/dev/null}"
tmp_out="$(mktemp)"
trap 'rm -f "$tmp_out"' EXIT
echo "+ sitebuild ${args[*]}"
GITHUB_OUTPUT="$tmp_out" "$sb" "${args[@]}"
cat "$tmp_out" >>"$real_out"

value() { sed -n "s/^$1=//p" "$tmp_out" | tail -n 1; }
case "$cmd" in
  build) changed="$(value built)" ;;
  deploy | preview) changed="$(value deployed)" ;;
  *) changed=true ;;
esac
{
  echo "changed=${changed:-false}"
  if [ -n "$preview" ]; then echo "preview-name=$preview"; fi
} >>"$real_out"

if [ "$cmd" = "preview" ] && [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  printf '### Preview %s\n\n%s\n\n' "$preview" "$(value url)" >>"$GITHUB_STEP_SUMMARY"
fi
