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
