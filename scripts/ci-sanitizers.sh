#!/bin/sh
# CI's sanitizer stage (after the README's test command, see .ci/run); run from the repository root.
#   1. The whole suite built with AddressSanitizer + UndefinedBehaviorSanitizer (BRAID_SANITIZE=ON) in build-asan.
#   2. The data loader and every multi-rank (process group, DDP, pipeline, ...) test under ThreadSanitizer
#      (BRAID_SANITIZE=thread) in build-tsan, with tests/tsan.supp and one OpenMP thread (tests/CMakeLists.txt says why).
# Any sanitizer report fails its test: UBSan stops at its first report instead of printing and going on, ASan and
# TSan fail the process by default. JOBS (default: nproc) sets the build and test parallelism.
set -e
JOBS="${JOBS:-$(nproc)}"
COMMON_FLAGS="-DCMAKE_BUILD_TYPE=Release -DBRAID_CUDA=OFF -DBRAID_BUILD_BENCH=OFF"

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# Every multi-rank job (the examples' too, not only tests/dist's, which also set the slow full unwinder) skips Open
# MPI's own leaks.
# The full unwinder lets a leak's stack reach the Open MPI frames the file names (with the fast one some stop in an
# unloaded plugin and match nothing).
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export ASAN_OPTIONS="fast_unwind_on_malloc=0"
cmake -S . -B build-asan $COMMON_FLAGS -DBRAID_SANITIZE=ON
cmake --build build-asan -j"$JOBS"
ctest --test-dir build-asan --output-on-failure -j"$JOBS"

# Only what these tests need: the library, the two test executables and the failing-rank helper.
cmake -S . -B build-tsan $COMMON_FLAGS -DBRAID_SANITIZE=thread -DBRAID_BUILD_EXAMPLES=OFF
cmake --build build-tsan -j"$JOBS" --target braid_nn_tests braid_dist_tests braid_dist_throwing_rank \
  braid_dist_job_monitor_rank
# The whole dist suite at 3 and 4 ranks is left out: under ThreadSanitizer, oversubscribed on two cores, a ring
# exchange of BatchIsendIrecv.RingExchangeInOneBatch did not complete within the 60 s timeout (open: not yet known
# whether it is starvation or lost progress); 1 and 2 ranks and the 3-rank Safety run stay in.
OMP_NUM_THREADS=1 ctest --test-dir build-tsan --output-on-failure -j"$JOBS" -R '^(DataLoaderTest|dist)\.' \
  -E '^dist\.np[34]$'
