#!/bin/sh
# Installs what Braid needs to build, test and run its examples on Debian 12 (uses sudo when not root).
set -e
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config \
  libeigen3-dev libopenblas-openmp-dev zlib1g-dev nlohmann-json3-dev libcxxopts-dev \
  libgtest-dev libgmock-dev \
  libopenmpi-dev openmpi-bin iproute2 \
  dataset-fashion-mnist \
  fortunes \
  clang-14 libclang-rt-14-dev libomp-14-dev
# fortunes: the English text examples/gpt trains on (/usr/share/games/fortunes). clang-14, libclang-rt-14-dev
# (libFuzzer and clang's sanitizer runtimes), libomp-14-dev (clang's OpenMP): the fuzz targets in fuzz/
# (scripts/ci-fuzz.sh). python3-torch is deliberately not here: only bench/ and the golden-file generators use it
# (apt-get install -y python3-torch).
# iproute2: `ip netns`, which tests/examples/two_hosts.sh makes its two hosts with (skipped without it).
