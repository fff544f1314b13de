// CUDA fused optimizer updates: one element-wise pass per parameter tensor that runs the SgdUpdate / AdamUpdate
// functors of functors.h, the same per-element rule as kernels/cpu/optimizer_update.cpp.
#include <cstdint>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

template <class T>
__global__ void __launch_bounds__(kThreads)
    sgd_update_kernel(SgdUpdate u, T* param, const T* grad, T* momentum_buffer, int64_t n) {
  T dummy = 0;  // the momentum slot when there is no buffer (momentum == 0), as on the CPU
  for (int64_t i = global_thread(); i < n; i += grid_stride())
    u(param[i], grad[i], momentum_buffer ? momentum_buffer[i] : dummy);
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    adam_update_kernel(AdamUpdate u, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) u(param[i], grad[i], exp_avg[i], exp_avg_sq[i]);
}

}  // namespace

template <class T>
void sgd_update(const SgdUpdate& u, T* param, const T* grad, T* momentum_buffer, int64_t n, Stream stream) {
  if (n <= 0) return;
  sgd_update_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(u, param, grad, momentum_buffer, n);
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void adam_update(const AdamUpdate& u, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n, Stream stream) {
  if (n <= 0) return;
  adam_update_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(u, param, grad, exp_avg, exp_avg_sq, n);
  BRAID_CUDA_CHECK_LAUNCH();
}

template void sgd_update<float>(const SgdUpdate&, float*, const float*, float*, int64_t, Stream);
template void sgd_update<double>(const SgdUpdate&, double*, const double*, double*, int64_t, Stream);
template void adam_update<float>(const AdamUpdate&, float*, const float*, float*, float*, int64_t, Stream);
template void adam_update<double>(const AdamUpdate&, double*, const double*, double*, double*, int64_t, Stream);

}  // namespace braid::kernels::cuda
