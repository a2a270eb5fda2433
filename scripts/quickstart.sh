#!/usr/bin/env bash
# Installs what is missing, builds iotnas (release preset) and runs the main job on the embedded
# default dataset (Fashion-MNIST from Debian's dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
exec build/release/apps/iotnas train --model ref:plain-14k --data fashion-mnist --epochs 10 \
  --out runs/plain-14k.ckpt "$@"
