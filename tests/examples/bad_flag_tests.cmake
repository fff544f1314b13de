# Absurd flag values (zero, negative, huge, overflowing, not a number, NaN and infinity) for the examples whose flags
# cxxopts converts: each names its flag. Included by bad_input_tests.cmake.
add_test(NAME example.array_mean_bad_flags
         COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:array_mean>
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/examples/check_array_mean_bad_flags.cmake)
if(EXISTS /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz)
  add_test(NAME example.fashion_mnist_bad_flags
           COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:fashion_mnist>
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/examples/check_fashion_mnist_bad_flags.cmake)
endif()
# Braid's environment variables: an on/off variable that is neither, or a trace file that cannot be written, ends
# every example (and every rank) with a message naming the variable and exit 1 (these once ran on silently, or named
# only start_trace).
set(braid_env_message "braid::dist::init: BRAID_DIST_[A-Z]+ must be 1 or 0 \\(or true/false, on/off, yes/no\\), got")
foreach(env BRAID_DIST_DEBUG=banana BRAID_DIST_SPIN=2)
  string(MAKE_C_IDENTIFIER "${env}" id)
  add_test(NAME example.simple_nn_bad_env_${id}
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:simple_nn>" "-DENV=${env}"
                   "-DEXPECT=${braid_env_message}" -P ${braid_bad_input_script})
  add_test(NAME example.array_mean_np2_bad_env_${id}
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${braid_bad_input_job}|--size|100" "-DENV=${env}"
                   "-DEXPECT=${braid_env_message}" -DRUNS=2 -P ${braid_bad_input_script})
  set_tests_properties(example.array_mean_np2_bad_env_${id} PROPERTIES PROCESSORS 2)
endforeach()
foreach(value abc -1 99999999999999999999999)
  string(MAKE_C_IDENTIFIER "${value}" id)
  add_test(NAME example.simple_nn_bad_env_BRAID_CPU_CACHE_BYTES_${id}
           COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:simple_nn>" "-DENV=BRAID_CPU_CACHE_BYTES=${value}"
                   "-DEXPECT=BRAID_CPU_CACHE_BYTES must be a number of bytes \\(0 turns the CPU cache off\\), got '${value}'"
                   -P ${braid_bad_input_script})
endforeach()
add_test(NAME example.simple_nn_bad_env_BRAID_TRACE
         COMMAND ${CMAKE_COMMAND} "-DCOMMAND=$<TARGET_FILE:simple_nn>" "-DENV=BRAID_TRACE=/no/such/folder/trace.json"
                 "-DEXPECT=braid::dist::init: BRAID_TRACE: start_trace: cannot write the trace file '/no/such/folder/"
                 -P ${braid_bad_input_script})
