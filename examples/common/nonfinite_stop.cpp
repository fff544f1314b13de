#include "nonfinite_stop.h"

#include <cmath>
#include <cstdint>
#include <optional>

namespace braid::examples {

namespace {

// What this rank found wrong at this step, if anything.
std::optional<std::string> local_finding(const Tensor& loss,
                                         const std::vector<std::pair<std::string, Tensor>>& named_parameters) {
  const double loss_value = loss.defined() ? loss.item<double>() : 0.0;
  const std::string loss_text = "the loss is " + nn::value_name(loss_value);
  if (auto grad = nn::first_nonfinite_grad(named_parameters)) {
    std::string text = "the gradient of " + nn::to_string(*grad);
    text.replace(text.rfind(" = "), 3, " is ");
    return std::isfinite(loss_value) ? text : text + " (" + loss_text + ")";
  }
  if (!std::isfinite(loss_value)) return loss_text + " (every gradient is finite)";
  return std::nullopt;
}

// `text` on rank `root` of `group`, on every rank.
std::string broadcast_text(const std::string& text, int root, dist::ProcessGroup& group) {
  Tensor length = from_vector(std::vector<int64_t>{int64_t(text.size())});
  group.broadcast(length, root)->wait();
  const int64_t n = length.item<int64_t>();
  std::vector<int64_t> codes(size_t(n), 0);
  if (group.rank() == root)
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<unsigned char>(text[i]);
  Tensor bytes = from_vector(codes, {n});
  if (n > 0) group.broadcast(bytes, root)->wait();
  const std::vector<int64_t> received = bytes.to_vector<int64_t>();
  return std::string(received.begin(), received.end());
}

}  // namespace

void stop_on_nonfinite(const std::string& step, const Tensor& loss,
                       const std::vector<std::pair<std::string, Tensor>>& named_parameters, dist::ProcessGroup* group) {
  const std::optional<std::string> mine = local_finding(loss, named_parameters);
  if (!group || group->size() == 1) {
    BRAID_CHECK(!mine, "--stop-on-nonfinite: ", step, ": ", *mine);
    return;
  }
  // The lowest rank that found something, or the group's size when none did: every rank then stops alike.
  Tensor first = from_vector(std::vector<int64_t>{mine ? group->rank() : group->size()});
  group->all_reduce(first, dist::ReduceOp::Min)->wait();
  const int64_t finder = first.item<int64_t>();
  if (finder == group->size()) return;
  const std::string text = broadcast_text(mine.value_or(""), int(finder), *group);
  BRAID_FAIL("--stop-on-nonfinite: ", step, ": rank ", finder, ": ", text);
}

}  // namespace braid::examples
