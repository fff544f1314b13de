# Each bad command line must end examples/pipeline (one process) with a non-zero exit before any training, and a
# message on stderr that names the flag. Inputs: EXE.
set(cases
    "--schedule|pipedream" "--schedule: .*unknown pipeline schedule 'pipedream', expected gpipe, 1f1b, interleaved or zb"
    "--microbatches|0" "--microbatches: expected 1 or more, got 0"
    "--microbatches|four" "--microbatches: expected an integer, got 'four'"
    "--batch-size|30|--microbatches|4" "--batch-size 30 does not divide into --microbatches 4"
    "--virtual-stages|2" "--virtual-stages 2 needs --schedule interleaved"
    "--virtual-stages=-1|--schedule|interleaved" "--virtual-stages: expected 0 or more, got -1"
    "--epochs|0" "--epochs: expected 1 or more"
    "--epochs|4294967297" "--epochs: expected at most 2147483647, got 4294967297"
    "--microbatches|4294967300" "--microbatches: expected at most 2147483647, got 4294967300"
    "--batch-size|0" "--batch-size: expected 1 or more"
    "--lr|0" "--lr: expected a positive number, got '0'"
    "--lr|fast" "--lr: expected a positive number, got 'fast'"
    "--optimizer|rmsprop" "--optimizer: expected sgd or adam, got 'rmsprop'"
    "--limit=-5" "--limit: expected 0 or more, got -5"
    "--seed|x" "--seed: expected an integer"
    "--data-dir|/no/such/fashion" "--data-dir: .*/no/such/fashion"
    "--lr|nan" "--lr: expected a positive number, got 'nan'"
    "--lr|1e999" "--lr: expected a positive number, got '1e999'"
    "--limit|99999999999999999999" "--limit: expected an integer, got '99999999999999999999'"
    "--seed|18446744073709551616" "--seed: expected an integer from 0 to 2\\^64 - 1"
    "--threads|100000" "--threads: expected 0 to 4096, got 100000"
    "--threads=-1" "--threads: expected 0 to 4096, got -1"
    "--virtual-stages|99|--schedule|interleaved" "--virtual-stages 99 on 1 ranks makes more stages than the model's 13"
    "--nan-loss-at-step=-1" "--nan-loss-at-step: expected 0 or more, got -1"
    "--no-such-flag" "no-such-flag")
include(${CMAKE_CURRENT_LIST_DIR}/bad_flags.cmake)
expect_bad_flags(PROGRAM pipeline EXE "${EXE}" BEFORE --limit 256 TRAINING "Epoch [0-9]" CASES ${cases})
