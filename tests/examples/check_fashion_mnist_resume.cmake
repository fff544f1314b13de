# Runs fashion_mnist on a small subset three ways: two epochs straight; the same two-epoch run stopped after its
# first epoch with a checkpoint; that checkpoint resumed for the second. The resumed run must end where the
# straight one does, bit for bit: byte-identical final training-state files (model, optimizer, schedule) and the
# same printed losses and accuracies. Also: an unwritable --checkpoint path is refused before any training.
# Inputs: EXE (the fashion_mnist binary), WORK (a scratch folder).
set(common --limit 512 --batch-size 64 --epochs 2 --threads 1 --workers 1 --log-every 2 --device cpu)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(run name)
  execute_process(COMMAND "${EXE}" ${common} ${ARGN} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fashion_mnist (${name}: ${ARGN}) exited with ${rc}:\n${out}\n${err}")
  endif()
  set(${name} "${out}" PARENT_SCOPE)
endfunction()

# The lines that carry numbers of epoch `epoch`, without the timings.
function(epoch_lines out_var text epoch)
  string(REGEX MATCHALL "epoch ${epoch} step +[0-9]+/[0-9]+  loss [0-9.]+" steps "${text}")
  string(REGEX MATCHALL "Epoch ${epoch} \\([^)]*\\): train loss [0-9.]+, test accuracy [0-9.]+%" summary "${text}")
  list(LENGTH steps n)
  if(n EQUAL 0 OR summary STREQUAL "")
    message(FATAL_ERROR "no progress lines for epoch ${epoch} in:\n${text}")
  endif()
  set(${out_var} "${steps};${summary}" PARENT_SCOPE)
endfunction()

run(straight --checkpoint "${WORK}/straight.safetensors")
run(stopped --stop-after 1 --checkpoint "${WORK}/half.safetensors")
run(resumed --resume "${WORK}/half.safetensors" --checkpoint "${WORK}/resumed.safetensors")

if(stopped MATCHES "Epoch 2")
  message(FATAL_ERROR "--stop-after 1 ran a second epoch:\n${stopped}")
endif()
if(NOT resumed MATCHES "Resumed from [^\n]*half.safetensors after epoch 1" OR resumed MATCHES "Epoch 1 ")
  message(FATAL_ERROR "the resumed run did not start at epoch 2:\n${resumed}")
endif()
epoch_lines(straight_1 "${straight}" 1)
epoch_lines(stopped_1 "${stopped}" 1)
epoch_lines(straight_2 "${straight}" 2)
epoch_lines(resumed_2 "${resumed}" 2)
if(NOT stopped_1 STREQUAL straight_1)
  message(FATAL_ERROR "epoch 1 differs:\nstraight: ${straight_1}\nstopped:  ${stopped_1}")
endif()
if(NOT resumed_2 STREQUAL straight_2)
  message(FATAL_ERROR "epoch 2 differs after the resume:\nstraight: ${straight_2}\nresumed:  ${resumed_2}")
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/straight.safetensors"
                        "${WORK}/resumed.safetensors" RESULT_VARIABLE differ)
if(NOT differ EQUAL 0)
  message(FATAL_ERROR "the resumed run's final training state differs from the straight run's (${WORK})")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${WORK}/straight.safetensors" "${WORK}/half.safetensors"
                RESULT_VARIABLE differ)
if(differ EQUAL 0)
  message(FATAL_ERROR "the checkpoint after epoch 1 equals the final one: the second epoch changed nothing")
endif()

# An unwritable checkpoint path is refused at start-up, before an epoch is spent.
set(bad "${WORK}/no/such/folder/state.safetensors")
execute_process(COMMAND "${EXE}" ${common} --checkpoint "${bad}" OUTPUT_VARIABLE out ERROR_VARIABLE err
                RESULT_VARIABLE rc)
if(rc EQUAL 0 OR out MATCHES "Epoch 1" OR NOT err MATCHES "--checkpoint" OR NOT err MATCHES "no/such/folder")
  message(FATAL_ERROR "an unwritable --checkpoint was not refused at start-up (exit ${rc}):\n${out}\n${err}")
endif()

# --checkpoint-every takes a step count and needs a file to save to.
foreach(bad "-1;expected a step count" "3;needs --checkpoint")
  list(GET bad 0 value)
  list(GET bad 1 expected)
  set(extra_flags --checkpoint-every=${value})
  if(value EQUAL -1)
    list(APPEND extra_flags --checkpoint "${WORK}/every.safetensors")
  endif()
  execute_process(COMMAND "${EXE}" ${common} ${extra_flags} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(rc EQUAL 0 OR out MATCHES "Epoch 1" OR NOT err MATCHES "--checkpoint-every" OR NOT err MATCHES "${expected}")
    message(FATAL_ERROR "--checkpoint-every ${value} was not refused with '${expected}' (exit ${rc}):\n${out}\n${err}")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK}")
message(STATUS "fashion_mnist: 1 epoch + resume + 1 epoch equals 2 epochs bit for bit")
