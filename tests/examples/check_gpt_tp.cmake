# Trains the GPT for a few steps as one process (--tp 1) and tensor-parallel under mpiexec (--tp N, plus EXTRA, e.g.
# --sequence-parallel), with the same flags and no dropout, and checks that the training loss of every step agrees
# within 1e-4 relative (the same model from the same seed on the same batches; only the reductions' order differs).
# Inputs: EXE (the gpt binary), MPIEXEC ("|"-separated words, ending with the rank count), TP, ARGS (a ;-list of
# flags, including --print-every 1), EXTRA (a ;-list, may be empty).
include(${CMAKE_CURRENT_LIST_DIR}/compare_runs.cmake)

function(run out_var)
  run_and_match(lines "step [0-9]+ loss [0-9]+\\.[0-9]+" "per-step losses" ${ARGN})
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# A step's loss, printed with 8 decimals, as an integer count of 1e-8.
function(loss_fixed_point out_var line)
  string(REGEX REPLACE ".* loss " "" loss "${line}")
  fixed_point(value "${loss}" 8)
  set(${out_var} ${value} PARENT_SCOPE)
endfunction()

string(REPLACE "|" ";" mpiexec "${MPIEXEC}")
run(single "${EXE}" ${ARGS} --tp 1)
run(parallel ${mpiexec} "${EXE}" ${ARGS} --tp ${TP} ${EXTRA})
list(LENGTH single n)
list(LENGTH parallel m)
if(NOT n EQUAL m)
  message(FATAL_ERROR "${n} steps as one process, ${m} at --tp ${TP}:\n${single}\n${parallel}")
endif()
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  list(GET single ${i} a)
  list(GET parallel ${i} b)
  loss_fixed_point(x "${a}")
  loss_fixed_point(y "${b}")
  abs_diff(diff ${x} ${y})
  # |x - y| <= 1e-4 |x|
  math(EXPR allowed "${x} / 10000")
  if(diff GREATER allowed)
    message(FATAL_ERROR "--tp ${TP} ${EXTRA} left the single-process losses at '${a}' vs '${b}':\n${single}\n${parallel}")
  endif()
endforeach()
list(GET single -1 a)
list(GET parallel -1 b)
message(STATUS "gpt --tp ${TP} ${EXTRA}: ${n} steps within 1e-4 relative (last: ${a} / ${b})")
