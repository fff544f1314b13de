# examples/pipeline end to end (included by ../CMakeLists.txt when the examples and Fashion-MNIST are there; needs
# braid_mpiexec): each schedule on 2 and 4 ranks follows the single process's losses and accuracies on a short
# --limit run; bad flags name the flag; ranks that fail after the flags were read end the job with the message.
set(braid_pipeline_args --limit 1024 --epochs 2 --batch-size 64 --microbatches 4 --threads 1)
foreach(np 2 4)
  string(REPLACE ";" "|" braid_pipeline_mpiexec "${braid_mpiexec};${MPIEXEC_NUMPROC_FLAG};${np}")
  foreach(schedule gpipe 1f1b interleaved zb)
    add_test(NAME example.pipeline_np${np}_${schedule}_follows_single_process
             COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:pipeline> "-DMPIEXEC=${braid_pipeline_mpiexec}"
                     "-DARGS=${braid_pipeline_args};--schedule;${schedule}"
                     -P ${CMAKE_CURRENT_SOURCE_DIR}/examples/check_pipeline.cmake)
    set_tests_properties(example.pipeline_np${np}_${schedule}_follows_single_process PROPERTIES TIMEOUT 180
                         PROCESSORS ${np} ENVIRONMENT "BRAID_DIST_TIMEOUT=60;OMP_NUM_THREADS=1")
  endforeach()
endforeach()

add_test(NAME example.pipeline_bad_flags_name_the_flag
         COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:pipeline> -P ${CMAKE_CURRENT_SOURCE_DIR}/examples/check_pipeline_bad_flags.cmake)
set_tests_properties(example.pipeline_bad_flags_name_the_flag PROPERTIES TIMEOUT 120)

# Flags only a 2-rank job can get wrong, and an error found after the flags were read (a batch larger than the
# data), must end both ranks with the message, not leave one waiting.
string(REPLACE ";" "|" braid_pipeline_job "${braid_mpiexec};${MPIEXEC_NUMPROC_FLAG};2;$<TARGET_FILE:pipeline>")
add_test(NAME example.pipeline_np2_interleaved_microbatches_fail
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_pipeline_job}|--schedule|interleaved|--microbatches|3|--batch-size|96"
                 -DMAX_SECONDS=30 "-DEXPECT=--microbatches 3 must be a multiple of the number of ranks \\(2\\)"
                 -P ${PROJECT_SOURCE_DIR}/tests/dist/check_job_fails.cmake)
add_test(NAME example.pipeline_np2_runtime_error_ends_every_rank
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_pipeline_job}|--limit|100|--batch-size|128"
                 -DMAX_SECONDS=30 "-DEXPECT=--batch-size 128 is more than the 100 training images"
                 -P ${PROJECT_SOURCE_DIR}/tests/dist/check_job_fails.cmake)
set_tests_properties(example.pipeline_np2_interleaved_microbatches_fail example.pipeline_np2_runtime_error_ends_every_rank
                     PROPERTIES TIMEOUT 60 PROCESSORS 2 ENVIRONMENT "BRAID_DIST_TIMEOUT=60")
