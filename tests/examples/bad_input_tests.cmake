# Bad input that once ended the examples in std::terminate (SIGABRT): a bad BRAID_DIST_TIMEOUT (every example, and
# array_mean on every rank of a 2-rank job); an array_mean --size whose chunk sums cannot fit in memory; a fashion_mnist
# --device cuda:N whose N is not a number and a --workers count no host can start. Each must exit non-zero with a
# message naming the variable or flag. Included by ../CMakeLists.txt with the examples (needs braid_mpiexec).
set(braid_bad_input_script ${CMAKE_CURRENT_SOURCE_DIR}/examples/check_clean_failure.cmake)
set(braid_timeout_message "BRAID_DIST_TIMEOUT must be a positive finite number of seconds, got")
string(REPLACE ";" "|" braid_bad_input_job "${braid_mpiexec};${MPIEXEC_NUMPROC_FLAG};2;$<TARGET_FILE:array_mean>")
foreach(value abc -1 1e999)
  string(MAKE_C_IDENTIFIER "${value}" id)
  add_test(NAME example.array_mean_bad_dist_timeout_${id}
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:array_mean>|--size|100" "-DENV=BRAID_DIST_TIMEOUT=${value}"
                   "-DEXPECT=${braid_timeout_message} '${value}'" -P ${braid_bad_input_script})
endforeach()
add_test(NAME example.array_mean_np2_bad_dist_timeout_every_rank
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_bad_input_job}|--size|100" "-DENV=BRAID_DIST_TIMEOUT=abc"
                 "-DEXPECT=${braid_timeout_message} 'abc'" -DRUNS=2 -P ${braid_bad_input_script})
set_tests_properties(example.array_mean_np2_bad_dist_timeout_every_rank PROPERTIES PROCESSORS 2)
foreach(example simple_nn pipeline gpt)
  add_test(NAME example.${example}_bad_dist_timeout
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:${example}>" "-DENV=BRAID_DIST_TIMEOUT=abc"
                   "-DEXPECT=${braid_timeout_message} 'abc'" -P ${braid_bad_input_script})
endforeach()
add_test(NAME example.array_mean_size_beyond_memory
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:array_mean>|--size|3000000000"
                 "-DEXPECT=--size 3000000000 with --chunk 1000 makes 9e\\+12 chunks, whose sums .* exceed this host's memory"
                 -P ${braid_bad_input_script})
add_test(NAME example.array_mean_chunk_beyond_memory
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:array_mean>|--size|3000000000|--chunk|1000000000|--threads|2"
                 "-DEXPECT=--chunk 1000000000: 2 threads holding a chunk of .* exceed this host's memory"
                 -P ${braid_bad_input_script})
add_test(NAME example.fashion_mnist_bad_dist_timeout
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:fashion_mnist>|--limit|256" "-DENV=BRAID_DIST_TIMEOUT=abc"
                 "-DEXPECT=${braid_timeout_message} 'abc'" -P ${braid_bad_input_script})
add_test(NAME example.fashion_mnist_workers_beyond_limit
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:fashion_mnist>|--limit|256|--epochs|1|--workers|100000"
                 "-DEXPECT=--workers: expected 0 to 1024 background threads, got 100000" -P ${braid_bad_input_script})
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  # The device is read after the data.
  foreach(device cuda:abc cuda:1x)
    string(MAKE_C_IDENTIFIER "${device}" id)
    add_test(NAME example.fashion_mnist_bad_device_${id}
             COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:fashion_mnist>|--limit|256|--epochs|1|--device|${device}"
                     "-DEXPECT=--device: expected cpu, cuda or cuda:N with N a device number, got '${device}'"
                     -P ${braid_bad_input_script})
  endforeach()
endif()
# Bad flags on one rank only (mpirun MPMD: the others' flags are fine): the job still ends within seconds, every rank,
# with that rank's parse error (the rank says it; its goodbye at exit ends the ranks that wait for it).
set(braid_one_rank_script ${CMAKE_CURRENT_SOURCE_DIR}/dist/check_job_fails.cmake)
string(REPLACE ";" "|" braid_one_rank_mpiexec "${braid_mpiexec}")
foreach(example array_mean pipeline gpt)
  set(one_rank_job "${braid_one_rank_mpiexec}|${MPIEXEC_NUMPROC_FLAG}|1|$<TARGET_FILE:${example}>|:")
  string(APPEND one_rank_job "|${MPIEXEC_NUMPROC_FLAG}|1|$<TARGET_FILE:${example}>")
  add_test(NAME example.${example}_bad_flag_on_rank_1
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${one_rank_job}|--no-such-flag" -DMAX_SECONDS=20
                   "-DEXPECT=${example} \\(rank 1\\): .*no-such-flag" -P ${braid_one_rank_script})
  set_tests_properties(example.${example}_bad_flag_on_rank_1 PROPERTIES TIMEOUT 60 PROCESSORS 2
                       ENVIRONMENT "BRAID_DIST_TIMEOUT=120")
endforeach()
add_test(NAME example.array_mean_help_on_rank_1
         COMMAND ${CMAKE_COMMAND}
                 "-DCOMMAND=${braid_one_rank_mpiexec}|${MPIEXEC_NUMPROC_FLAG}|1|$<TARGET_FILE:array_mean>|:|${MPIEXEC_NUMPROC_FLAG}|1|$<TARGET_FILE:array_mean>|--help"
                 -DMAX_SECONDS=20 "-DEXPECT=rank 1 left the job" -P ${braid_one_rank_script})
set_tests_properties(example.array_mean_help_on_rank_1 PROPERTIES TIMEOUT 60 PROCESSORS 2
                     ENVIRONMENT "BRAID_DIST_TIMEOUT=120")
include(${CMAKE_CURRENT_LIST_DIR}/nonfinite_tests.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/bad_flag_tests.cmake)
