# Installs this build tree into a fresh prefix (cmake --install), then configures, builds and runs the C++-only
# project in consumer/ against it, once per case (see consumer/CMakeLists.txt; the case without MPI is only
# configured), with this build's generator, compiler and compiler launcher. Fails on the first step that fails,
# printing its output.
#
# cmake -DBUILD_DIR=... -DCONSUMER_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=... [-DCXX_LAUNCHER=...]
#       [-DBUILD_TYPE=...] -P check_find_package.cmake
foreach(var BUILD_DIR CONSUMER_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_find_package.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

function(run_step what)
  string(TIMESTAMP start "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}")
  endif()
  string(TIMESTAMP end "%s")
  math(EXPR seconds "${end} - ${start}")
  message(STATUS "${what}: ${seconds} s")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
run_step("cmake --install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}" --config "${BUILD_TYPE}")
if(NOT EXISTS "${prefix}/lib/cmake/Braid/BraidConfig.cmake" AND NOT EXISTS "${prefix}/lib64/cmake/Braid/BraidConfig.cmake")
  message(FATAL_ERROR "cmake --install put no lib/cmake/Braid/BraidConfig.cmake under ${prefix}")
endif()

foreach(consumer nn nn_without_mpi dist)
  set(build "${WORK_DIR}/${consumer}")
  run_step("configuring the ${consumer} consumer"
           ${CMAKE_COMMAND} -S "${CONSUMER_DIR}" -B "${build}" -G "${GENERATOR}"
           "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_LAUNCHER}"
           "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}" "-DCMAKE_PREFIX_PATH=${prefix}" "-DCONSUMER=${consumer}")
  if(consumer STREQUAL "nn_without_mpi")  # what it would build is the nn case's program: finding Braid is the test
    continue()
  endif()
  run_step("building the ${consumer} consumer" ${CMAKE_COMMAND} --build "${build}" --config "${BUILD_TYPE}")
  file(GLOB_RECURSE app LIST_DIRECTORIES false "${build}/app" "${build}/app.exe")
  if(NOT app)
    message(FATAL_ERROR "the ${consumer} consumer built no executable 'app' under ${build}")
  endif()
  list(GET app 0 app)
  run_step("running the ${consumer} consumer" "${app}")
  message(STATUS "${consumer}: found Braid, built and ran:\n${step_output}")
endforeach()
