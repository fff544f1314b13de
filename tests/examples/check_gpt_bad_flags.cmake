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
    "--no-such-flag" "no-such-flag"
    "--data|/no/such/fortunes" "/no/such/fortunes.*apt-get install fortunes")
list(LENGTH cases n)
math(EXPR last "${n} - 1")
foreach(i RANGE 0 ${last} 2)
  list(GET cases ${i} words)
  math(EXPR j "${i} + 1")
  list(GET cases ${j} expect)
  string(REPLACE "|" ";" argv "${words}")
  execute_process(COMMAND "${EXE}" ${argv} --sample-len 0 OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(rc EQUAL 0 OR out MATCHES "step [0-9]" OR NOT err MATCHES "${expect}")
    message(FATAL_ERROR "gpt ${argv}: expected a non-zero exit before training and a message matching '${expect}', "
                        "got exit ${rc}:\nstdout: ${out}\nstderr: ${err}")
  endif()
  string(STRIP "${err}" err)
  string(REGEX REPLACE "\n.*" "" first_line "${err}")
  message(STATUS "gpt ${argv} -> ${first_line}")
endforeach()
