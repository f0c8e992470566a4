#!/usr/bin/env bash
# Installs the Debian packages pelab needs, only those missing (apt-get update first).
set -euo pipefail
packages=(build-essential cmake ninja-build ccache libtorch-dev libtomlplusplus-dev libcli11-dev
          nlohmann-json3-dev libfmt-dev libsqlitecpp-dev libsqlite3-dev libgtest-dev gnuplot-nox
          libopenblas0-openmp  # OpenBLAS replaces the reference BLAS LibTorch would use: ~7x faster
          libdnnl-dev  # oneDNN: the linear layers (src/kernels/onednn_linear.cpp)
          python3 python3-numpy  # python/pelab_reader.py and its parity test (CTest)
          munge slurmctld slurmd slurm-client)  # a local Slurm for the Slurm backend's tests
# --fuzz (make fuzz): clang with libFuzzer and the sanitizer runtimes.
if [ "${1:-}" = "--fuzz" ]; then packages+=(clang-14 libclang-rt-14-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "pelab: installing missing packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
