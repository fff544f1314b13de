#include "braid/kernels/cpu/threads.h"

#include <cblas.h>
#include <omp.h>

namespace braid::kernels::cpu {

void set_num_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace braid::kernels::cpu
