#!/usr/bin/env bash
# The build job of both pipelines (.github/workflows/sitebuild.yml, .gitlab-ci.yml).
# The pipelines map their own variables onto these; the logic lives in sitebuild.
#
#   SB_BEFORE      revision the push started from ("" or all zeros: treat as changed)
#   SB_PUSH        "true" to push the image (never on pull/merge requests)
#   SB_REPO        registry repository to push to, e.g. ghcr.io/owner/site
#   SB_SHORT_SHA   short commit id, pushed as tag sha-<id>
#   SB_LATEST      "true" to also push :latest (the default branch)
#   SITEBUILD_REGISTRY_USER / SITEBUILD_REGISTRY_PASSWORD  registry credentials
#   SITEBUILD_BASE_IMAGE  optional; "sitebuild/nginx:offline" builds the offline base first
set -euo pipefail

if [ "${SITEBUILD_BASE_IMAGE:-}" = "sitebuild/nginx:offline" ]; then
  "$(dirname "$0")/../offline-base.sh"
fi

# Second guard beside the pipeline's path filter: exit 0 changed, 3 no change, else an error.
rc=0
sitebuild changed --since "${SB_BEFORE:-}" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
  exit "$rc"
fi

# Builds only when no image has this fingerprint; outputs image/fingerprint for later jobs.
sitebuild build

if [ "${SB_PUSH:-false}" = "true" ]; then
  tags=(--tag "sha-${SB_SHORT_SHA:?SB_SHORT_SHA is required to push}")
  if [ "${SB_LATEST:-false}" = "true" ]; then
    tags+=(--tag latest)
  fi
  sitebuild push --to "${SB_REPO:?SB_REPO is required to push}" "${tags[@]}"
else
  echo "not pushing (SB_PUSH=${SB_PUSH:-false})"
fi
