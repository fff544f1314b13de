#include "braid/kernels/cpu/optimizer_update.h"

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

template <class T>
void sgd_update(const SgdUpdate& u, T* param, const T* grad, T* momentum_buffer, int64_t n) {
  T dummy = 0;
  const bool has_buf = momentum_buffer != nullptr;
#pragma omp parallel for simd if (n >= kParallelGrain) firstprivate(dummy)
  for (int64_t i = 0; i < n; ++i) u(param[i], grad[i], has_buf ? momentum_buffer[i] : dummy);
}

template <class T>
void adam_update(const AdamUpdate& u, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n) {
#pragma omp parallel for simd if (n >= kParallelGrain)
  for (int64_t i = 0; i < n; ++i) u(param[i], grad[i], exp_avg[i], exp_avg_sq[i]);
}

template void sgd_update<float>(const SgdUpdate&, float*, const float*, float*, int64_t);
template void sgd_update<double>(const SgdUpdate&, double*, const double*, double*, int64_t);
template void adam_update<float>(const AdamUpdate&, float*, const float*, float*, float*, int64_t);
template void adam_update<double>(const AdamUpdate&, double*, const double*, double*, double*, int64_t);

}  // namespace braid::kernels::cpu
