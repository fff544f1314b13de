// The CPU thread count shared by Braid's OpenMP loops and OpenBLAS (its OpenMP build uses the same pool).
// It starts at OMP_NUM_THREADS (or the core count) and changes with set_num_threads.
#pragma once

namespace braid::kernels::cpu {

void set_num_threads(int n);
int get_num_threads();

}  // namespace braid::kernels::cpu
