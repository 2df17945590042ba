#!/usr/bin/env bash
# The deploy job of both pipelines: `sitebuild deploy` against a remote engine.
#
#   SB_DOCKER_HOST   e.g. ssh://deploy@example.com or tcp://example.com:2376 (unset: skip, with a notice)
#   SB_SSH_KEY       private key for ssh:// (optional when the runner already has one)
#   SB_KNOWN_HOSTS   known_hosts line(s) for the host (required for ssh://: no trust on first use)
#   SB_PORT, SB_BIND published port and address on the remote host (default 80, 0.0.0.0)
#   DOCKER_TLS_VERIFY / DOCKER_CERT_PATH for tcp:// with TLS
set -euo pipefail

if [ -z "${SB_DOCKER_HOST:-}" ]; then
  msg="deploy skipped: no remote engine configured (set SITEBUILD_DOCKER_HOST, e.g. ssh://deploy@example.com, and SITEBUILD_SSH_KEY)"
  if [ "${GITHUB_ACTIONS:-}" = "true" ]; then
    echo "::notice title=Deploy skipped::$msg"
    echo "### Deploy skipped" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
    echo "$msg" >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
  else
    echo "$msg"
  fi
  exit 0
fi

case "$SB_DOCKER_HOST" in
  ssh://*)
    mkdir -p ~/.ssh
    chmod 700 ~/.ssh
    if [ -n "${SB_SSH_KEY:-}" ]; then
      printf '%s\n' "$SB_SSH_KEY" > ~/.ssh/sitebuild_deploy
      chmod 600 ~/.ssh/sitebuild_deploy
      printf 'Host *\n  IdentityFile ~/.ssh/sitebuild_deploy\n' >> ~/.ssh/config
    fi
    host="${SB_DOCKER_HOST#ssh://}"
    host="${host#*@}"
    host="${host%%/*}"
    if [ -n "${SB_KNOWN_HOSTS:-}" ]; then
      printf '%s\n' "$SB_KNOWN_HOSTS" >> ~/.ssh/known_hosts
    else
      echo "error: $SB_DOCKER_HOST needs its host key: on a machine you trust run ssh-keyscan -p $(echo "$host:22" | cut -d: -f2) ${host%%:*} and store the output as SITEBUILD_KNOWN_HOSTS (secret / CI/CD variable)" >&2
      exit 1
    fi
    ;;
esac

export DOCKER_HOST="$SB_DOCKER_HOST"
sitebuild deploy --port "${SB_PORT:-80}" --bind "${SB_BIND:-0.0.0.0}"
sitebuild status
