# cmake -DCOMMAND="word|word|..." -DMAX_SECONDS=N -DEXPECT=regex -P check_job_fails.cmake
# Passes when the command exits non-zero within MAX_SECONDS and its output matches EXPECT: a job with a failing rank
# must end, not hang.
string(REPLACE "|" ";" command "${COMMAND}")
string(TIMESTAMP start "%s" UTC)
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP end "%s" UTC)
math(EXPR elapsed "${end} - ${start}")
message("exit status: ${rc}, ${elapsed} s\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
if(rc STREQUAL "0")
  message(FATAL_ERROR "the job exited with status 0; it should have failed")
endif()
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not end by itself within ${MAX_SECONDS} s (${rc})")
endif()
if(elapsed GREATER MAX_SECONDS)
  message(FATAL_ERROR "the job took ${elapsed} s to fail, more than ${MAX_SECONDS} s")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "the output does not contain '${EXPECT}'")
endif()
