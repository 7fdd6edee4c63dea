#!/usr/bin/env bash
# Builds the static dockhook binary and the FROM scratch image around it.
# Usage: scripts/build-image.sh [TAG]   (default tag: dockhook:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-dockhook:latest}
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --target x86_64-unknown-linux-gnu
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build -t "$tag" .
echo "built $tag"
