// Fused optimizer updates over contiguous parameter, gradient and state buffers: one pass per parameter tensor.
#pragma once

#include <cstdint>

#include "braid/kernels/functors.h"

namespace braid::kernels::cpu {

template <class T>
void sgd_update(const SgdUpdate& u, T* param, const T* grad, T* momentum_buffer, int64_t n);
template <class T>
void adam_update(const AdamUpdate& u, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, int64_t n);

}  // namespace braid::kernels::cpu
