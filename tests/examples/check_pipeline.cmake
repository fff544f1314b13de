# Trains examples/pipeline as one process and under mpiexec with the same flags, and checks that every epoch's
# training loss and test accuracy agree: the same micro-batches through the same layers, only placed on other ranks
# (the sums may differ in their last bits, so within 2e-4 for the loss and 0.1 points for the accuracy, printed
# with 4 and 2 decimals). Inputs: EXE, MPIEXEC ("|"-separated words, ending with the rank count), ARGS (a ;-list).
include(${CMAKE_CURRENT_LIST_DIR}/compare_runs.cmake)

function(run out_var)
  run_and_match(lines "Epoch [0-9]+: train loss [0-9]+\\.[0-9]+, test accuracy [0-9]+\\.[0-9]+%" "per-epoch results"
                ${ARGN})
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

# Fails unless the values named by `regex`'s group in lines a and b differ by at most `allowed` (in 1e-4).
function(expect_near a b regex allowed)
  string(REGEX REPLACE ".*${regex}.*" "\\1" x "${a}")
  string(REGEX REPLACE ".*${regex}.*" "\\1" y "${b}")
  fixed_point(x "${x}" 4)
  fixed_point(y "${y}" 4)
  abs_diff(diff ${x} ${y})
  if(diff GREATER allowed)
    message(FATAL_ERROR "'${a}' as one process, '${b}' under ${MPIEXEC}")
  endif()
endfunction()

string(REPLACE "|" ";" mpiexec "${MPIEXEC}")
run(single "${EXE}" ${ARGS})
run(parallel ${mpiexec} "${EXE}" ${ARGS})
list(LENGTH single n)
list(LENGTH parallel m)
if(NOT n EQUAL m)
  message(FATAL_ERROR "${n} epochs as one process, ${m} in parallel:\n${single}\n${parallel}")
endif()
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  list(GET single ${i} a)
  list(GET parallel ${i} b)
  expect_near("${a}" "${b}" "train loss ([0-9.]+)," 2)
  expect_near("${a}" "${b}" "test accuracy ([0-9.]+)%" 1000)
endforeach()
list(GET parallel -1 b)
message(STATUS "pipeline ${ARGS} under ${MPIEXEC}: ${n} epochs as one process (last: ${b})")
