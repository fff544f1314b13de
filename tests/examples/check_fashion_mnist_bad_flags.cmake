# Each absurd value must end fashion_mnist (one process) with a non-zero exit before any training, and a message on
# stderr that names the flag. Inputs: EXE.
set(cases
    "--epochs|4294967297" "--epochs: '4294967297' is not a value of this flag's type"
    "--epochs|0" "--epochs: expected at least 1, got 0"
    "--batch-size|0" "--batch-size: expected 1 or more, got 0"
    "--batch-size|1e3" "--batch-size: '1e3' is not a value of this flag's type"
    "--lr|nan" "--lr: 'nan' is not a value of this flag's type"
    "--lr|1e999" "--lr: '1e999' is not a value of this flag's type"
    "--lr=-1" "--lr: expected a positive number, got -1"
    "--momentum|5" "--momentum: expected a value in .0, 1., got 5"
    "--threads|100000" "--threads: expected 0 to 4096, got 100000"
    "--threads=-3" "--threads: expected 0 to 4096, got -3"
    "--workers|x" "--workers: 'x' is not a value of this flag's type"
    "--seed=-1" "--seed: '-1' is not a value of this flag's type"
    "--log-every|0" "--log-every: expected 1 or more, got 0"
    "--bucket-mb=-1" "--bucket-mb: expected a size in .0, 1048576. MiB, got -1"
    "--limit=-5" "--limit: expected a count of images >= 0, got -5"
    "--no-such-flag" "no-such-flag")
include(${CMAKE_CURRENT_LIST_DIR}/bad_flags.cmake)
expect_bad_flags(PROGRAM fashion_mnist EXE "${EXE}" BEFORE --limit 256 TRAINING "Epoch [0-9]|step " CASES ${cases})
