#!/usr/bin/env bash
# Installs what iotnas needs from Debian's repositories (as root), or prints the exact apt-get
# command to run (as another user). Idempotent: installs only what is missing.
#   scripts/setup.sh            build + run + test packages
#   scripts/setup.sh --cross    also the arm64 cross compiler and qemu (the Raspberry Pi stand-in)
#   scripts/setup.sh --peer     also PyTorch + OpenBLAS (only for the side-by-side benchmarks)
set -euo pipefail

packages=(build-essential cmake pkg-config libdnnl-dev libeigen3-dev zlib1g-dev libsqlite3-dev
          nettle-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev dataset-fashion-mnist
          gnuplot-nox clang-14 libfuzzer-14-dev libomp-14-dev
          libopenmpi-dev openmpi-bin slurm-wlm munge)
arm64_packages=()
for arg in "$@"; do
  case "$arg" in
    --cross) packages+=(g++-aarch64-linux-gnu qemu-user-static)
             arm64_packages=(zlib1g-dev:arm64 libsqlite3-dev:arm64 nettle-dev:arm64 libgtest-dev:arm64) ;;
    --peer) packages+=(python3-torch libopenblas0-openmp python3-numpy) ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --cross, --peer)" >&2; exit 2 ;;
  esac
done

missing() {
  local out=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[@]:-}"
}

need=$(missing "${packages[@]}")
need_arm=""
if [ ${#arm64_packages[@]} -gt 0 ]; then
  need_arm=$(missing "${arm64_packages[@]}")
fi
if [ -z "$need" ] && [ -z "$need_arm" ]; then
  echo "setup.sh: all packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages; run as root:" >&2
  [ -n "$need_arm" ] && echo "  dpkg --add-architecture arm64 && apt-get update" >&2
  echo "  apt-get install -y $need $need_arm" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$need_arm" ]; then
  dpkg --print-foreign-architectures | grep -q arm64 || dpkg --add-architecture arm64
fi
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $need $need_arm
echo "setup.sh: installed $need $need_arm"
