# Each absurd value must end array_mean (one process) with a non-zero exit before any work, and a message on stderr
# that names the flag. Inputs: EXE.
set(cases
    "--size|0" "--size: expected 1 or more, got 0"
    "--size|abc" "--size: expected an integer, got 'abc'"
    "--size|99999999999999999999" "--size: expected an integer, got '99999999999999999999'"
    "--size|9223372036854775807|--chunk|2" "--size 9223372036854775807 with --chunk 2 makes .* exceed this host's memory"
    "--chunk=-1" "--chunk: expected 1 or more, got -1"
    "--threads|100000" "--threads: expected 0 to 4096, got 100000"
    "--threads=-1" "--threads: expected 0 to 4096, got -1"
    "--seed=-1" "--seed: expected an integer from 0 to 2\\^64 - 1, got '-1'"
    "--no-such-flag" "no-such-flag")
include(${CMAKE_CURRENT_LIST_DIR}/bad_flags.cmake)
expect_bad_flags(PROGRAM array_mean EXE "${EXE}" TRAINING "^mean |mean [0-9]" CASES ${cases})
