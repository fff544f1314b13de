# --stop-on-nonfinite: a NaN injected at a known step (--nan-loss-at-step in gpt and pipeline, a learning rate of
# 1e30 in fashion_mnist, which overflows the weights after one step) must end the run with a non-zero exit and a
# message naming that step and the first parameter whose gradient is NaN; under mpiexec every rank stops. Included
# by bad_input_tests.cmake (needs braid_mpiexec and braid_bad_input_script).
set(braid_np2 "${braid_mpiexec};${MPIEXEC_NUMPROC_FLAG};2")
string(REPLACE ";" "|" braid_np2 "${braid_np2}")
if(EXISTS /usr/share/games/fortunes/fortunes)
  set(gpt_small "--steps|5|--warmup|1|--eval-every|100|--sample-len|0|--n-layer|1|--n-embd|32|--stop-on-nonfinite")
  add_test(NAME example.gpt_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:gpt>|${gpt_small}|--nan-loss-at-step|3"
                   "-DEXPECT=--stop-on-nonfinite: step 3: the gradient of wte\\.weight\\[0, 0\\] is nan \\(the loss is nan\\)"
                   -P ${braid_bad_input_script})
  # Tensor-parallel: each rank holds a shard of every parameter; the ranks agree on the step and on what was found.
  add_test(NAME example.gpt_tp2_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_np2}|$<TARGET_FILE:gpt>|--tp|2|${gpt_small}|--nan-loss-at-step|4"
                   "-DEXPECT=--stop-on-nonfinite: step 4: rank 0: the gradient of wte\\.weight\\[0, 0\\] is nan"
                   -P ${braid_bad_input_script})
  set_tests_properties(example.gpt_tp2_stop_on_nonfinite PROPERTIES PROCESSORS 2)
endif()
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  set(pipeline_small "--limit|512|--epochs|1|--batch-size|64|--stop-on-nonfinite|--nan-loss-at-step|2")
  add_test(NAME example.pipeline_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:pipeline>|${pipeline_small}"
                   "-DEXPECT=--stop-on-nonfinite: epoch 1 step 2: the gradient of 0\\.weight\\[0, 0\\] is nan"
                   -P ${braid_bad_input_script})
  # Two stages on two ranks: the loss is on rank 1, the first stage's parameters on rank 0; both stop at step 2.
  add_test(NAME example.pipeline_np2_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_np2}|$<TARGET_FILE:pipeline>|${pipeline_small}"
                   "-DEXPECT=--stop-on-nonfinite: epoch 1 step 2: rank 0: the gradient of 0\\.weight\\[0, 0\\] is nan"
                   -P ${braid_bad_input_script})
  set_tests_properties(example.pipeline_np2_stop_on_nonfinite PROPERTIES PROCESSORS 2)
  set(fashion_diverges "--limit|512|--epochs|1|--lr|1e30|--stop-on-nonfinite")
  add_test(NAME example.fashion_mnist_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:fashion_mnist>|${fashion_diverges}"
                   "-DEXPECT=--stop-on-nonfinite: epoch 1 step 2: the gradient of 0\\.weight\\[[0-9]+, [0-9]+\\] is nan"
                   -P ${braid_bad_input_script})
  add_test(NAME example.fashion_mnist_ddp_stop_on_nonfinite
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_np2}|$<TARGET_FILE:fashion_mnist>|--ddp|${fashion_diverges}"
                   "-DEXPECT=--stop-on-nonfinite: epoch 1 step 2: rank 0: the gradient of 0\\.weight\\[[0-9]+, [0-9]+\\] is nan"
                   -P ${braid_bad_input_script})
  set_tests_properties(example.fashion_mnist_ddp_stop_on_nonfinite PROPERTIES PROCESSORS 2)
endif()
