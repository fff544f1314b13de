#include "braid/dist/vocab_parallel_cross_entropy.h"

#include "braid/core/ops.h"
#include "braid/nn/autograd.h"
#include "collectives_along_dim.h"
#include "vocab_range.h"

namespace braid::dist {

namespace {

using ops::BinaryOp;
using ops::UnaryOp;

void check_args(const char* op, const Tensor& logits, const Tensor& target, const ProcessGroup& group) {
  BRAID_CHECK(logits.defined() && target.defined(), op, ": undefined logits or target");
  BRAID_CHECK(logits.dim() == 2, op, ": expected logits_shard [batch, vocabulary / ", group.size(), "], got ",
              shape_str(logits.shape()));
  BRAID_CHECK(logits.dtype() == DType::Float32 || logits.dtype() == DType::Float64, op,
              ": logits must be floating point, got ", logits.dtype());
  BRAID_CHECK(target.dim() == 1 && target.shape()[0] == logits.shape()[0], op, ": target shape ",
              shape_str(target.shape()), " does not match logits_shard ", shape_str(logits.shape()), " (expected [",
              logits.shape()[0], "])");
  ops::check_same_device(op, logits, target);
}

// What the backward needs: this rank's slice of the softmax, and the targets it holds.
struct Saved {
  Tensor probs, slice_target, held;
};

// Per-row losses log(sum exp) - logit[target], over the whole vocabulary, from three all-reduces of [N] values.
Tensor per_row_loss(const Tensor& logits, const Tensor& target, ProcessGroup& group, Saved& saved) {
  Tensor row_max = ops::amax(logits, {1}, true);
  group.all_reduce(row_max, ReduceOp::Max)->wait();
  Tensor shifted = ops::binary(BinaryOp::Sub, logits, row_max);
  Tensor exps = ops::unary(UnaryOp::Exp, shifted);
  Tensor sum_exp = ops::sum(exps, {1}, true);
  group.all_reduce(sum_exp, ReduceOp::Sum)->wait();
  int64_t part = logits.shape()[1], start = group.rank() * part;
  detail::VocabSlice s = detail::vocab_slice(target, start, start + part, logits.dtype());
  // nll gives -shifted[i, local_target[i]]; rows whose target another rank holds contribute zero.
  Tensor target_logit = ops::binary(BinaryOp::Mul, ops::affine(ops::nll(shifted, s.local_ids), -1, 0), s.held);
  group.all_reduce(target_logit, ReduceOp::Sum)->wait();
  saved = {ops::binary(BinaryOp::Div, exps, sum_exp), s.local_ids, s.held};
  Tensor log_sum = ops::unary(UnaryOp::Log, ops::flatten(sum_exp, 0, -1));
  return ops::binary(BinaryOp::Sub, log_sum, target_logit);
}

// d loss_i / d logits = softmax_i - onehot(target_i) (where this rank holds it), times the row's gradient.
Tensor backward_of(const Saved& s, const Tensor& grad_rows) {
  Tensor g = ops::contiguous(grad_rows);
  Tensor softmax_part = ops::binary(BinaryOp::Mul, s.probs, ops::unsqueeze(g, 1));
  Tensor onehot_part = ops::nll_backward(s.probs, s.slice_target, ops::binary(BinaryOp::Mul, g, s.held), 1.0, false);
  return ops::binary(BinaryOp::Add, softmax_part, onehot_part);
}

}  // namespace

Tensor vocab_parallel_cross_entropy(const Tensor& logits_shard, const Tensor& target, const ProcessGroupPtr& group,
                                    nn::functional::Reduction reduction) {
  const char* op = "vocab_parallel_cross_entropy";
  detail::check_tensor_parallel_group(op, group);
  check_args(op, logits_shard, target, *group);
  detail::check_ids_in_vocabulary(op, target, logits_shard.shape()[1] * group->size());
  if (group->size() == 1) return nn::functional::cross_entropy(logits_shard, target, reduction);
  Saved saved;
  Tensor rows;
  {
    NoGradGuard no_grad;
    rows = per_row_loss(logits_shard.detach(), target.detach(), *group, saved);
  }
  if (autograd::any_requires_grad({logits_shard}))
    rows = autograd::record("VocabParallelCrossEntropyBackward", rows, {logits_shard},
                            [saved](const Tensor& g) { return std::vector<Tensor>{backward_of(saved, g)}; }, {});
  switch (reduction) {
    case nn::functional::Reduction::None:
      return rows;
    case nn::functional::Reduction::Sum:
      return sum(rows);
    case nn::functional::Reduction::Mean:
      return mean(rows);
  }
  BRAID_FAIL(op, ": unknown reduction ", int(reduction));
}

}  // namespace braid::dist
