#include <cmath>
#include <initializer_list>
#include <utility>

#include "braid/core/memory_overlap.h"
#include "braid/kernels/cpu/optimizer_update.h"
#include "op_util.h"

namespace braid::ops {

namespace {
void check_state(const char* op, const Tensor& param, const Tensor& t, const char* what) {
  detail::check_device(op, t);
  BRAID_CHECK(t.shape() == param.shape() && t.dtype() == param.dtype() && t.device() == param.device(), op, ": ",
              what, " is ", shape_str(t.shape()), " ", t.dtype(), " on ", t.device(), " but the parameter is ",
              shape_str(param.shape()), " ", param.dtype(), " on ", param.device());
  BRAID_CHECK(t.is_contiguous(), op, ": ", what, " must be contiguous");
}

// The tensors an update writes, each named for the error messages (a list on the stack: this runs for every
// parameter in every step).
using Written = std::initializer_list<std::pair<const Tensor*, const char*>>;

// Checks that the tensors an update writes are apart from one another (the gradient, only read, may alias one
// exactly), then bumps each one's version.
void prepare_writes(const char* op, const Tensor& grad, Written out) {
  for (auto i = out.begin(); i != out.end(); ++i) {
    check_no_partial_overlap(op, *i->first, grad);
    for (auto j = out.begin(); j != i; ++j) check_no_overlap(op, *j->first, j->second, *i->first, i->second);
  }
  for (const auto& written : out) written.first->bump_version();
}
}  // namespace

void sgd_update_(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdParams& p) {
  check_state("sgd_update_", param, param, "parameter");
  check_state("sgd_update_", param, grad, "gradient");
  if (p.momentum != 0) {
    BRAID_CHECK(buf.defined(), "sgd_update_: momentum needs a buffer");
    check_state("sgd_update_", param, buf, "momentum buffer");
    prepare_writes("sgd_update_", grad, {{&param, "parameter"}, {&buf, "momentum buffer"}});
  } else {
    prepare_writes("sgd_update_", grad, {{&param, "parameter"}});
  }
  kernels::SgdUpdate u{p.lr, p.momentum, p.dampening, p.weight_decay, p.nesterov, p.first_step};
  dispatch_floating(param.dtype(), "sgd_update_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* b = p.momentum != 0 ? buf.data<T>() : nullptr;
    BRAID_ON_DEVICE(param, kernels::cpu::sgd_update<T>(u, param.data<T>(), grad.data<T>(), b, param.numel()),
                    kernels::cuda::sgd_update<T>(u, param.data<T>(), grad.data<T>(), b, param.numel(),
                                                 detail::stream_of(param)));
  });
}

void adam_update_(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamParams& p) {
  check_state("adam_update_", param, param, "parameter");
  check_state("adam_update_", param, grad, "gradient");
  check_state("adam_update_", param, m, "exp_avg");
  check_state("adam_update_", param, v, "exp_avg_sq");
  BRAID_CHECK(p.step >= 1, "adam_update_: step must start at 1, got ", p.step);
  prepare_writes("adam_update_", grad, {{&param, "parameter"}, {&m, "exp_avg"}, {&v, "exp_avg_sq"}});
  kernels::AdamUpdate u{p.lr,
                        p.beta1,
                        p.beta2,
                        p.eps,
                        p.weight_decay,
                        1 - std::pow(p.beta1, double(p.step)),
                        1 - std::pow(p.beta2, double(p.step)),
                        p.decoupled_weight_decay};
  dispatch_floating(param.dtype(), "adam_update_", [&](auto tag) {
    using T = typename decltype(tag)::type;
    BRAID_ON_DEVICE(param,
                    kernels::cpu::adam_update<T>(u, param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(),
                                                 param.numel()),
                    kernels::cuda::adam_update<T>(u, param.data<T>(), grad.data<T>(), m.data<T>(), v.data<T>(),
                                                  param.numel(), detail::stream_of(param)));
  });
}

}  // namespace braid::ops
