# Finds OpenBLAS, preferring Debian's OpenMP build (libopenblas-openmp-dev) so that OpenBLAS and Braid's own
# OpenMP loops share one thread pool. Defines the imported target braid_blas::openblas.
if(NOT TARGET braid_blas::openblas)
  set(_braid_blas_arch_dir "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}")
  find_path(BRAID_CBLAS_INCLUDE_DIR cblas.h
    HINTS "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp"
    PATH_SUFFIXES openblas-openmp openblas)
  find_library(BRAID_OPENBLAS_LIBRARY NAMES openblas
    HINTS "${_braid_blas_arch_dir}/openblas-openmp"
    PATH_SUFFIXES openblas-openmp)
  if(NOT BRAID_CBLAS_INCLUDE_DIR OR NOT BRAID_OPENBLAS_LIBRARY)
    message(FATAL_ERROR "OpenBLAS not found: install Debian's libopenblas-openmp-dev")
  endif()
  add_library(braid_blas::openblas UNKNOWN IMPORTED)
  set_target_properties(braid_blas::openblas PROPERTIES
    IMPORTED_LOCATION "${BRAID_OPENBLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BRAID_CBLAS_INCLUDE_DIR}")
  message(STATUS "Braid BLAS: ${BRAID_OPENBLAS_LIBRARY}")
endif()
