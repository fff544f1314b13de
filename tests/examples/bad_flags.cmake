# expect_bad_flags(PROGRAM name EXE path BEFORE args... AFTER args... TRAINING regex CASES words expect ...): runs
# EXE once per case, with BEFORE, the case's words ("|"-separated) and AFTER, and fails unless it exits non-zero,
# prints nothing matching TRAINING on stdout, and prints a message matching `expect` on stderr.
function(expect_bad_flags)
  cmake_parse_arguments(PARSE_ARGV 0 arg "" "PROGRAM;EXE;TRAINING" "BEFORE;AFTER;CASES")
  list(LENGTH arg_CASES n)
  math(EXPR last "${n} - 1")
  foreach(i RANGE 0 ${last} 2)
    list(GET arg_CASES ${i} words)
    math(EXPR j "${i} + 1")
    list(GET arg_CASES ${j} expect)
    string(REPLACE "|" ";" argv "${words}")
    execute_process(COMMAND "${arg_EXE}" ${arg_BEFORE} ${argv} ${arg_AFTER} OUTPUT_VARIABLE out ERROR_VARIABLE err
                    RESULT_VARIABLE rc)
    if(rc EQUAL 0 OR out MATCHES "${arg_TRAINING}" OR NOT err MATCHES "${expect}")
      message(FATAL_ERROR "${arg_PROGRAM} ${argv}: expected a non-zero exit before training and a message matching "
                          "'${expect}', got exit ${rc}:\nstdout: ${out}\nstderr: ${err}")
    endif()
    string(STRIP "${err}" err)
    string(REGEX REPLACE "\n.*" "" first_line "${err}")
    message(STATUS "${arg_PROGRAM} ${argv} -> ${first_line}")
  endforeach()
endfunction()
