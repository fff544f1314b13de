#!/bin/sh
# CI's fuzzing stage (see .ci/run); run from the repository root. Builds the libFuzzer targets in fuzz/ with Debian's
# clang (BRAID_FUZZ=ON: coverage, AddressSanitizer, UndefinedBehaviorSanitizer) and runs each for FUZZ_SECONDS
# (default 60) from its seeds (fuzz/corpus/<target>) and past findings (fuzz/regressions/<target>). New inputs go to
# build-fuzz/corpus-<target>, never into the repository. A finding fails the stage; its input is saved as
# build-fuzz/crash-<target>-<sha1>: fix the reader, then add the input to fuzz/regressions/<target>, which the
# normal suite replays (tests/nn/test_fuzz_regressions.cpp).
set -e
JOBS="${JOBS:-$(nproc)}"
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
CLANG_CXX="${CLANG_CXX:-clang++-14}"
CLANG_C="${CLANG_C:-clang-14}"

cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Release -DBRAID_CUDA=OFF -DBRAID_FUZZ=ON -DBRAID_BUILD_TESTS=OFF \
  -DBRAID_BUILD_EXAMPLES=OFF -DBRAID_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER="$CLANG_CXX" -DCMAKE_C_COMPILER="$CLANG_C"
cmake --build build-fuzz -j"$JOBS" --target braid_fuzz_idx braid_fuzz_safetensors

for target in idx safetensors; do
  mkdir -p "build-fuzz/corpus-$target"
  inputs="build-fuzz/corpus-$target fuzz/corpus/$target"
  if [ -d "fuzz/regressions/$target" ]; then inputs="$inputs fuzz/regressions/$target"; fi
  # -max_len: the seeds are small and the readers' limits are about sizes declared in headers, not file length.
  # -rss_limit_mb: the readers must not allocate what a header claims, only what the file holds.
  "build-fuzz/fuzz/braid_fuzz_$target" -max_total_time="$FUZZ_SECONDS" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$target-" \
    $inputs
done
