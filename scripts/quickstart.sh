#!/usr/bin/env bash
# Installs what is missing, builds iotnas (release preset) and runs the main job on the embedded
# default dataset (Fashion-MNIST from Debian's dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"
# The whole loop (search, calibration, training, 184-type sweeps, fronts, answers, report) on the
# `quick` budget; extra arguments go to `iotnas run` (e.g. --budget smoke). Rerunning resumes.
exec build/release/apps/iotnas run --out runs/quick "$@"
