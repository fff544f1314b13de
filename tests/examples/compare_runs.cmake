# What the scripts that compare an example's single-process run with its run under mpiexec share.

# Runs the command ARGN, fails unless it exits with 0, and sets out_var to the list of its stdout's matches of
# `regex` (failing, with `what` in the message, when there are none).
function(run_and_match out_var regex what)
  execute_process(COMMAND ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN} exited with ${rc}:\n${out}\n${err}")
  endif()
  string(REGEX MATCHALL "${regex}" lines "${out}")
  if(lines STREQUAL "")
    message(FATAL_ERROR "no ${what} from ${ARGN}:\n${out}\n${err}")
  endif()
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# "12.3456" with `decimals` 4 as the integer count of 1e-4 (digits past `decimals` are dropped).
function(fixed_point out_var text decimals)
  string(REGEX REPLACE "^([0-9]+)\\.([0-9]+)$" "\\1;\\2" parts "${text}")
  list(GET parts 0 whole)
  list(GET parts 1 frac)
  string(REPEAT "0" ${decimals} zeros)
  string(SUBSTRING "${frac}${zeros}" 0 ${decimals} frac)
  string(REGEX REPLACE "^0+([0-9])" "\\1" frac "${frac}")
  math(EXPR value "${whole} * 1${zeros} + ${frac}")
  set(${out_var} ${value} PARENT_SCOPE)
endfunction()

# |a - b| for integers.
function(abs_diff out_var a b)
  math(EXPR diff "${a} - ${b}")
  if(diff LESS 0)
    math(EXPR diff "-${diff}")
  endif()
  set(${out_var} ${diff} PARENT_SCOPE)
endfunction()
