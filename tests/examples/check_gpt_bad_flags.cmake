# Each bad command line must end gpt with a non-zero exit before any training step, and a message on stderr that
# names the flag (or, for a missing corpus, the folder and the package). Inputs: EXE (the gpt binary).
set(cases
    "--steps|0" "--steps"
    "--steps|ten" "--steps"
    "--batch-size=-3" "--batch-size"
    "--block-size|0" "--block-size"
    "--lr|0" "--lr"
    "--lr|fast" "--lr"
    "--min-lr|1|--lr|0.1" "--min-lr"
    "--warmup|50|--steps|10" "--warmup"
    "--dropout|1.5" "--dropout"
    "--n-embd|100|--n-head|3" "--n-embd 100 does not divide by --n-head 3"
    "--tp|2" "--tp 2 must equal the number of ranks"
    "--seed=-1" "--seed"
    "--temperature|0" "--temperature"
    "--device|tpu" "--device"
    "--device|cuda:x" "--device"
    "--eval-batches|0" "--eval-batches"
    "--steps|99999999999999999999" "--steps: expected an integer, got '99999999999999999999'"
    "--lr|nan" "--lr: expected a number, got 'nan'"
    "--lr|inf" "--lr: expected a number, got 'inf'"
    "--grad-clip|1e999" "--grad-clip: expected a number, got '1e999'"
    "--seed|18446744073709551616" "--seed: expected an integer from 0 to 2\\^64 - 1"
    "--threads|5000" "--threads: expected 0 to 4096, got 5000"
    "--nan-loss-at-step=-1" "--nan-loss-at-step: expected 0 or more, got -1"
    "--n-embd|1000000" "--n-embd 1000000.*more than this host's"
    "--batch-size|100000000" "--batch-size 100000000.*more than this host's"
    "--no-such-flag" "no-such-flag"
    "--data|/no/such/fortunes" "/no/such/fortunes.*apt-get install fortunes")
include(${CMAKE_CURRENT_LIST_DIR}/bad_flags.cmake)
expect_bad_flags(PROGRAM gpt EXE "${EXE}" AFTER --sample-len 0 TRAINING "step [0-9]" CASES ${cases})
