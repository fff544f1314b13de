#include "braid/dist/distributed_data_parallel.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <map>
#include <string>
#include <sstream>
#include <tuple>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/nn/autograd.h"
#include "braid/nn/parallel_attributes.h"
#include "group_ranks.h"
#include "wait_follows_hint.h"

namespace braid::dist {

namespace {

// The contiguous run of `flat` that starts `offset` elements in, shaped as `shape` (it shares the storage).
Tensor slot_view(const Tensor& flat, int64_t offset, const Shape& shape) {
  return make_tensor(flat.storage(), shape, contiguous_strides(shape), flat.offset() + offset, flat.dtype());
}

using detail::ranks_str;

// The broadcast from rank 0 and the gradient average run over DDP's group: for a shard whose other shards live on
// ranks of that group, they would overwrite each shard with rank 0's and average different parts of the parameter.
// Returns what is wrong (empty when nothing is): the ranks agree on the outcome in check_same_model, since only
// some of them may hold such a shard.
std::string across_shards_problem(const std::string& name, const Tensor& p, const ProcessGroup& group) {
  nn::ParallelAttributes a = nn::parallel_attributes(p);
  if (!a.is_sharded() || !a.group) return "";
  std::vector<int> shared = detail::shared_ranks(*a.group, group);
  if (shared.size() <= 1) return "";
  std::ostringstream os;
  os << "parameter '" << name << "' is sharded over the group " << ranks_str(a.group->ranks()) << ", which shares ranks "
     << ranks_str(shared) << " with DDP's group " << ranks_str(group.ranks());
  return os.str();
}

// One line per parameter and buffer: what every rank's model must agree on before the broadcast writes rank 0's
// values into it. Devices may differ (each rank on its own GPU), so they are left out.
std::vector<std::string> model_layout(const std::vector<std::string>& names, const std::vector<Tensor>& params,
                                      const nn::Module& module) {
  std::vector<std::string> lines;
  auto add = [&lines](const char* kind, const std::string& name, const Tensor& t) {
    std::ostringstream os;
    os << kind << name << " " << shape_str(t.shape()) << " " << t.dtype();
    lines.push_back(os.str());
  };
  for (size_t i = 0; i < params.size(); ++i) add("", names[i], params[i]);
  for (auto& [name, b] : module.named_buffers())
    if (b.defined()) add("buffer ", name, b);
  return lines;
}

// FNV-1a over the lines and their separators: equal layouts give equal values on every rank.
int64_t layout_fingerprint(const std::vector<std::string>& lines) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
  for (const auto& line : lines) {
    for (char c : line) mix(static_cast<unsigned char>(c));
    mix('\n');
  }
  return static_cast<int64_t>(h);
}

// The `n` characters of `chars` from `start`, one per element, cut at each newline.
std::vector<std::string> split_lines(const std::vector<int64_t>& chars, size_t start, int64_t n) {
  std::vector<std::string> lines;
  std::string line;
  for (size_t k = start; k < start + size_t(n); ++k) {
    const char c = static_cast<char>(chars[k]);
    if (c != '\n') {
      line += c;
      continue;
    }
    lines.push_back(line);
    line.clear();
  }
  return lines;
}

// Every rank's `lines`, in group-rank order. Only for the error path: one character per element.
std::vector<std::vector<std::string>> gather_layouts(const std::vector<std::string>& lines, ProcessGroup& group) {
  std::string text;
  for (const auto& line : lines) text += line + '\n';
  const int64_t p = group.size();
  Tensor lengths = empty({p}, TensorOptions(DType::Int64, Device::cpu()));
  group.all_gather(lengths, from_vector(std::vector<int64_t>{int64_t(text.size())}))->wait();
  const std::vector<int64_t> len = lengths.to_vector<int64_t>();
  const int64_t longest = *std::max_element(len.begin(), len.end());
  std::vector<int64_t> mine(size_t(longest), 0);
  for (size_t k = 0; k < text.size(); ++k) mine[k] = static_cast<unsigned char>(text[k]);
  Tensor all = empty({p * longest}, TensorOptions(DType::Int64, Device::cpu()));
  if (longest > 0) group.all_gather(all, from_vector(mine))->wait();
  const std::vector<int64_t> chars = longest > 0 ? all.to_vector<int64_t>() : std::vector<int64_t>();
  std::vector<std::vector<std::string>> out;
  for (size_t r = 0; r < len.size(); ++r) out.push_back(split_lines(chars, r * size_t(longest), len[r]));
  return out;
}

// The first position where the ranks' layouts differ, with what each rank has there.
std::string layout_mismatch(const std::vector<std::vector<std::string>>& layouts, const ProcessGroup& group) {
  size_t longest = 0;
  for (const auto& l : layouts) longest = std::max(longest, l.size());
  size_t at = 0;
  auto entry = [&at](const std::vector<std::string>& l) { return at < l.size() ? l[at] : std::string("(none)"); };
  for (; at < longest; ++at) {
    bool same = true;
    for (const auto& l : layouts) same = same && entry(l) == entry(layouts.front());
    if (!same) break;
  }
  std::ostringstream os;
  os << "DistributedDataParallel: the ranks' models differ at parameter/buffer " << at << " (in named_parameters() "
     << "then named_buffers() order):";
  for (size_t r = 0; r < layouts.size(); ++r)
    os << (r ? "," : "") << " rank " << group.ranks()[r] << ": " << entry(layouts[r]);
  os << " (entries per rank:";
  for (size_t r = 0; r < layouts.size(); ++r) os << (r ? ", " : " ") << layouts[r].size();
  os << "); every rank must build the same model, with the same parameter names, shapes and dtypes, before "
        "wrapping it, or rank 0's broadcast would overwrite the others' weights with values of the wrong size";
  return os.str();
}

// The same error on every rank, naming each rank's shard problem (`problem`: this rank's, or empty).
[[noreturn]] void fail_across_shards(const std::string& problem, ProcessGroup& group) {
  std::vector<std::vector<std::string>> all =
      gather_layouts(problem.empty() ? std::vector<std::string>{} : std::vector<std::string>{problem}, group);
  std::ostringstream os;
  os << "DistributedDataParallel:";
  for (size_t r = 0; r < all.size(); ++r)
    if (!all[r].empty()) os << " on rank " << group.ranks()[r] << ", " << all[r].front() << ";";
  os << " DDP must run over the data-parallel group, whose ranks hold the same shard";
  BRAID_FAIL(os.str());
}

// Every rank learns whether all ranks' layouts match, and whether any rank holds a shard spread over DDP's group,
// from one small all_gather (a fingerprint and a flag per rank); only when something is wrong, the texts travel, so
// that every rank throws the same error naming the first difference.
void check_same_model(const std::vector<std::string>& names, const std::vector<Tensor>& params,
                      const nn::Module& module, const std::string& shard_problem, ProcessGroup& group) {
  if (group.size() < 2) {
    BRAID_CHECK(shard_problem.empty(), "DistributedDataParallel: ", shard_problem);
    return;
  }
  const std::vector<std::string> lines = model_layout(names, params, module);
  const int64_t mine = layout_fingerprint(lines);
  Tensor all = empty({2 * int64_t(group.size())}, TensorOptions(DType::Int64, Device::cpu()));
  group.all_gather(all, from_vector(std::vector<int64_t>{mine, shard_problem.empty() ? 0 : 1}))->wait();
  const std::vector<int64_t> got = all.to_vector<int64_t>();
  bool same = true, shards_ok = true;
  for (size_t r = 0; r < got.size(); r += 2) {
    same = same && got[r] == got[0];
    shards_ok = shards_ok && got[r + 1] == 0;
  }
  if (!shards_ok) fail_across_shards(shard_problem, group);
  if (!same) BRAID_FAIL(layout_mismatch(gather_layouts(lines, group), group));
}

// A flat tensor holding `values` on `device`.
Tensor int64_on(const std::vector<int64_t>& values, Device device) {
  return ops::to_device(from_vector(values), device);
}

}  // namespace

// Everything the autograd hooks touch. The destructor removes the hooks; they hold the state weakly all the same.
//
// A bucket is one flat buffer: the gradients of its parameters one after another, then one flag per parameter
// (1 where this rank produced a gradient for it since the last synchronised pass, else 0), then a leave slot. The
// flags ride in the same all-reduce, so every rank learns, with no extra message, how many ranks used each
// parameter: a missing gradient is then an error on every rank alike (not on one rank while the others wait at the
// next collective), and with find_unused_parameters a parameter that no rank used keeps its .grad as it was. The
// leave slot is 0 in a pass; a rank whose DDP is destroyed sends 1 there in the first bucket's shape, so the ranks
// still stepping learn, in the all-reduce they were waiting in, that it left.
struct DistributedDataParallel::State {
  struct Bucket {
    std::vector<size_t> params;    // parameter indices, in the order their gradients sit in the buffer
    std::vector<int64_t> offsets;  // element offset of each gradient in the buffer
    int64_t flags_offset = 0;      // where the per-parameter flags start
    Tensor buffer;
    size_t pending = 0;  // gradients of the current pass not in the buffer yet
    WorkHandle work;
  };

  std::shared_ptr<ProcessGroup> group;
  Joinable* owner = nullptr;  // the wrapper, for the Join it may be in
  DDPOptions options;
  std::vector<std::string> names;  // of every parameter, as named_parameters() gives them
  std::vector<Tensor> params;      // every parameter (those not requiring grad have no bucket)
  std::vector<Tensor> buffers;     // the module's buffers, for broadcast_buffers
  std::vector<std::vector<size_t>> assignment;
  std::vector<Bucket> buckets;
  std::vector<int64_t> bucket_of;  // parameter -> bucket (-1: not requiring grad)
  std::vector<size_t> slot_of;     // parameter -> position in its bucket
  std::vector<char> ready;         // the parameter's hook fired in the current synchronised pass
  std::vector<char> used;          // ... or in a no_sync pass since the last synchronised one
  bool sync = true;                // false under no_sync()
  bool pass_active = false;
  double inv_world = 1;    // 1 / the number of ranks the current pass's sum is divided by
  int active = 1;          // ranks that take part in the current pass (fewer once some joined)
  int root = 0;            // the group rank the buffers come from after the current pass
  int64_t steps = 0;       // synchronised passes this rank started
  bool divide_by_initial_world_size = true;  // of the Join this wrapper was last put in
  size_t next_launch = 0;  // buckets start in index order on every rank, whatever order they fill in
  std::vector<autograd::HookHandle> hooks;  // one per parameter with a bucket

  // Runs the end of a synchronised pass from the autograd callback. If the pass dies first (an exception in
  // backward drops the queued callback unrun), the destructor still waits for what was launched and resets the
  // state, so the next pass starts clean.
  struct PassGuard {
    std::shared_ptr<State> state;
    bool ran = false;
    explicit PassGuard(std::shared_ptr<State> s) : state(std::move(s)) {}
    PassGuard(const PassGuard&) = delete;
    PassGuard& operator=(const PassGuard&) = delete;
    ~PassGuard() {
      if (ran) return;
      try {
        state->drain();
      } catch (...) {  // already unwinding from the error the user will see
      }
      state->reset();
    }
    void run() {
      ran = true;
      try {
        state->finalize();
      } catch (...) {
        state->reset();
        throw;
      }
      state->reset();
    }
  };

  // Parameter i's gradient is final for this backward pass.
  void on_grad_ready(size_t i, const Tensor& leaf, const std::shared_ptr<State>& self) {
    used[i] = 1;
    if (!sync) return;
    if (!pass_active) {
      begin_pass();
      pass_active = true;
      for (auto& b : buckets) b.pending = b.params.size();
      auto guard = std::make_shared<PassGuard>(self);
      autograd::queue_callback([guard] { guard->run(); });
    }
    if (ready[i]) return;
    ready[i] = 1;
    if (!options.overlap) return;
    Bucket& b = buckets[size_t(bucket_of[i])];
    copy_in(b, slot_of[i], leaf.grad());
    if (--b.pending == 0) launch_ready();
  }

  // Counts the step and, inside a Join, learns which ranks still step: the divisor and the buffers' root follow.
  void begin_pass() {
    ++steps;
    const int size = group->size();
    active = size;
    root = 0;
    if (const JoinRound* round = Join::notify_join_context(*owner)) {
      active = int(round->active.size());
      root = round->active.front();
    }
    inv_world = 1.0 / double(divide_by_initial_world_size ? size : active);
  }

  void check_unchanged(size_t i, const Tensor& grad) const {
    const Tensor& p = params[i];
    const Bucket& b = buckets[size_t(bucket_of[i])];
    BRAID_CHECK(grad.shape() == p.shape() && grad.dtype() == b.buffer.dtype() && grad.device() == b.buffer.device(),
                "DistributedDataParallel: parameter '", names[i], "' now has a ", shape_str(grad.shape()), " ",
                grad.dtype(), " gradient on ", grad.device(), ", but its bucket was built for ", b.buffer.dtype(),
                " on ", b.buffer.device(), "; move or convert the model before wrapping it in DistributedDataParallel");
  }

  // Puts this rank's contribution for position k of bucket b into its slot: `grad`, or zeros when undefined.
  void copy_in(Bucket& b, size_t k, const Tensor& grad) {
    size_t i = b.params[k];
    Tensor slot = slot_view(b.buffer, b.offsets[k], params[i].shape());
    NoGradGuard no_grad;
    if (grad.defined()) {
      check_unchanged(i, grad);
      // Each rank puts in its gradient divided by the group size and the buckets are summed: the average, with
      // the division riding on the copy instead of a pass of its own. With gradient_as_bucket_view, a .grad kept
      // since the last pass (zero_grad(false), or accumulation) is this very slot: backward already accumulated
      // into the bucket, which is scaled where it is.
      if (grad.raw_data() == slot.raw_data() && grad.is_contiguous())
        ops::mul_(slot, inv_world);
      else
        ops::affine_(slot, grad, inv_world);
    } else {
      ops::fill_(slot, 0);
    }
  }

  void launch(Bucket& b) {
    NoGradGuard no_grad;
    std::vector<double> flags(b.params.size() + 1, 0.0);  // the last: the leave slot
    for (size_t k = 0; k < b.params.size(); ++k) flags[k] = used[b.params[k]] ? 1.0 : 0.0;  // sum: ranks using it
    // One copy for all flags (one transfer rather than a kernel per parameter when the bucket is on a GPU).
    ops::copy_(ops::narrow(b.buffer, 0, b.flags_offset, int64_t(flags.size())), from_vector(flags));
    // The last bucket fills when backward is all but over and finalize() waits for it next: issued with that hint,
    // the waiting thread runs it instead of waking the communication thread for it (MPI backend).
    detail::WaitFollowsHint hint(&b == &buckets.back());
    b.work = group->all_reduce(b.buffer, ReduceOp::Sum);
  }

  // Starts, in order, every bucket whose gradients are all in.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) launch(buckets[next_launch++]);
  }

  void drain() {
    for (auto& b : buckets)
      if (b.work) b.work->wait();
  }

  void reset() {
    pass_active = false;
    next_launch = 0;
    std::fill(ready.begin(), ready.end(), 0);
    for (auto& b : buckets) b.work.reset();
  }

  // The end of a synchronised backward pass: start what is left, wait for everything, check that every
  // parameter had a gradient on every rank, and write the averages into .grad.
  void finalize() {
    for (size_t bi = next_launch; bi < buckets.size(); ++bi) {
      Bucket& b = buckets[bi];
      for (size_t k = 0; k < b.params.size(); ++k) {
        size_t i = b.params[k];
        // Ready parameters were copied by their hook (with overlap). The others contribute what they accumulated
        // in no_sync passes since the last synchronised one, or zeros (not a stale .grad that no pass produced).
        if (!(ready[i] && options.overlap)) copy_in(b, k, used[i] ? params[i].grad() : Tensor());
      }
      launch(b);
    }
    next_launch = buckets.size();
    try {
      drain();
    } catch (const Error& e) {  // most often another rank ran out of batches and went on to another collective
      BRAID_FAIL("DistributedDataParallel: the gradient all-reduce of this rank's step ", steps, " failed: ", e.what(),
                 "; if the ranks have different numbers of batches, give each the same number or wrap the training "
                 "loop in a dist::Join (auto join = ddp.join();)");
    }

    const int world = active;
    std::vector<std::pair<size_t, int64_t>> missing;  // parameter, number of ranks that gave it a gradient
    std::vector<int64_t> users(params.size(), 0);
    int64_t leavers = 0;
    for (auto& b : buckets) {
      Tensor flags = ops::to_device(
          ops::to_dtype(ops::narrow(b.buffer, 0, b.flags_offset, int64_t(b.params.size()) + 1), DType::Float64),
          Device::cpu());
      const double* f = flags.data<double>();
      for (size_t k = 0; k < b.params.size(); ++k) {
        size_t i = b.params[k];
        users[i] = std::llround(f[k]);
        if (users[i] < world) missing.emplace_back(i, users[i]);
      }
      if (&b == &buckets.front()) leavers = std::llround(f[b.params.size()]);
    }
    if (leavers > 0) {
      std::fill(used.begin(), used.end(), 0);
      fail_step_counts(false);
    }
    if (options.broadcast_buffers && !buffers.empty()) broadcast_from_root(buffers, root);
    if (!missing.empty() && !options.find_unused_parameters) {
      std::sort(missing.begin(), missing.end());
      std::ostringstream os;
      os << "DistributedDataParallel: " << missing.size()
         << " parameter(s) received no gradient on some ranks in this synchronised backward pass (or in the "
            "no_sync passes before it):";
      for (auto& [i, n] : missing)
        os << " '" << names[i] << "' (no gradient on " << (world - n) << " of " << world << " ranks"
           << (used[i] ? "" : ", this one included") << ");";
      os << " if the forward pass legitimately skips parameters, pass DDPOptions{.find_unused_parameters = true}; "
            "otherwise make the loss depend on every parameter that requires grad";
      std::fill(used.begin(), used.end(), 0);
      BRAID_FAIL(os.str());
    }
    NoGradGuard no_grad;
    for (auto& b : buckets) {
      for (size_t k = 0; k < b.params.size(); ++k) {
        size_t i = b.params[k];
        if (users[i] == 0) continue;  // no rank used it: .grad stays as it was, as without DDP
        Tensor avg = slot_view(b.buffer, b.offsets[k], params[i].shape());
        Tensor g = params[i].grad();
        if (options.gradient_as_bucket_view) {
          if (!(g.defined() && g.raw_data() == avg.raw_data())) params[i].set_grad(avg);
        } else if (g.defined() && g.shape() == avg.shape() && g.dtype() == avg.dtype() && g.device() == avg.device()) {
          ops::copy_(g, avg);
        } else {
          params[i].set_grad(ops::clone(avg));
        }
      }
    }
    std::fill(used.begin(), used.end(), 0);
  }

  // Every rank's step count, and whether it left: the same error on every rank, naming them.
  [[noreturn]] void fail_step_counts(bool leaving) {
    const int p = group->size();
    Tensor all = empty({2 * int64_t(p)}, TensorOptions(DType::Int64, buckets.front().buffer.device()));
    group->all_gather(all, int64_on({steps, leaving ? 1 : 0}, all.device()))->wait();
    const std::vector<int64_t> got = ops::to_device(all, Device::cpu()).to_vector<int64_t>();
    std::ostringstream os;
    os << "DistributedDataParallel: the ranks ran different numbers of synchronised steps (backward passes):";
    for (int r = 0; r < p; ++r)
      os << (r ? "," : "") << " rank " << group->ranks()[size_t(r)] << " ran " << got[2 * size_t(r)] << " steps"
         << (got[2 * size_t(r) + 1] ? " (then its DistributedDataParallel was destroyed)" : " (still stepping)");
    os << "; give every rank the same number of batches (e.g. a DistributedSampler with drop_last), or wrap the "
          "training loop in a dist::Join (auto join = ddp.join();), whose finished ranks shadow the others' steps";
    BRAID_FAIL(os.str());
  }

  // A rank whose wrapper goes away: first bucket's all-reduce with the leave slot set. If the others are still
  // stepping (they were in that all-reduce, not leaving too), it matches the rest of their pass with zeros and
  // every rank throws the step counts.
  void say_goodbye() {
    NoGradGuard no_grad;
    auto scratch = [](const Bucket& b) { return zeros(b.buffer.shape(), TensorOptions(b.buffer.dtype(), b.buffer.device())); };
    const Bucket& first = buckets.front();
    Tensor bye = scratch(first);
    ops::fill_(ops::narrow(bye, 0, first.flags_offset + int64_t(first.params.size()), 1), 1);
    group->all_reduce(bye, ReduceOp::Sum)->wait();
    const double leavers =
        ops::to_device(ops::to_dtype(ops::narrow(bye, 0, bye.numel() - 1, 1), DType::Float64), Device::cpu())
            .to_vector<double>()
            .front();
    if (std::llround(leavers) >= group->size()) return;  // every rank leaves here: the steps matched
    std::vector<WorkHandle> works;
    for (size_t bi = 1; bi < buckets.size(); ++bi) works.push_back(group->all_reduce(scratch(buckets[bi]), ReduceOp::Sum));
    for (auto& w : works) w->wait();
    fail_step_counts(true);
  }

  // On a joined rank: the collectives of one pass of the ranks still stepping, with zero gradients and flags.
  void shadow_pass(const JoinRound& round) {
    NoGradGuard no_grad;
    std::vector<WorkHandle> works;
    for (auto& b : buckets) {
      ops::fill_(b.buffer, 0);
      works.push_back(group->all_reduce(b.buffer, ReduceOp::Sum));
    }
    for (auto& w : works) w->wait();
    if (options.broadcast_buffers && !buffers.empty()) broadcast_from_root(buffers, round.active.front());
  }

  // Once every rank joined: the model of a rank that stepped last (the highest such group rank) goes to every rank.
  void sync_final_model(bool is_last_joiner) {
    const Device device = params.empty() ? Device::cpu() : params.front().device();
    Tensor from = int64_on({is_last_joiner ? int64_t(group->rank()) : int64_t(-1)}, device);
    group->all_reduce(from, ReduceOp::Max)->wait();
    const int source = int(ops::to_device(from, Device::cpu()).to_vector<int64_t>().front());
    std::vector<Tensor> all = params;
    all.insert(all.end(), buffers.begin(), buffers.end());
    broadcast_from_root(all, source);
  }

  // Copies group rank `source`'s values of `tensors` to every rank; all broadcasts start before any is waited on.
  void broadcast_from_root(const std::vector<Tensor>& tensors, int source = 0) {
    std::vector<std::pair<Tensor, Tensor>> staged;  // (destination, the contiguous copy that travelled)
    std::vector<WorkHandle> works;
    NoGradGuard no_grad;
    for (const auto& t : tensors) {
      if (!t.defined() || t.numel() == 0) continue;
      Tensor buf = t.is_contiguous() ? t : ops::contiguous(t);
      works.push_back(group->broadcast(buf, source));
      if (!buf.same(t)) staged.emplace_back(t, buf);
    }
    for (auto& w : works) w->wait();
    for (auto& [dst, buf] : staged) ops::copy_(dst, buf);
  }
};

DistributedDataParallel::DistributedDataParallel(nn::Module& module, std::shared_ptr<ProcessGroup> group,
                                                 DDPOptions options)
    : module_(module), group_(std::move(group)), options_(options) {
  BRAID_CHECK(group_, "DistributedDataParallel: the process group is null; pass braid::dist::world() or the ",
              "data-parallel group from new_group()");
  BRAID_CHECK(group_->is_member(), "DistributedDataParallel: this rank (global ", dist::rank(),
              ") is not a member of the data-parallel group ", ranks_str(group_->ranks()),
              "; only the group's ranks may wrap their model in it");
  state_ = std::make_shared<State>();
  State& s = *state_;
  s.group = group_;
  s.owner = this;
  s.options = options_;
  s.inv_world = 1.0 / double(s.group->size());
  s.active = s.group->size();
  std::string shard_problem;  // the first; agreed on in check_same_model
  for (auto& [name, p] : module_.named_parameters()) {
    BRAID_CHECK(p.defined(), "DistributedDataParallel: parameter '", name, "' is undefined");
    if (shard_problem.empty()) shard_problem = across_shards_problem(name, p, *group_);
    s.names.push_back(name);
    s.params.push_back(p);
  }
  for (auto& b : module_.buffers())
    if (b.defined()) s.buffers.push_back(b);

  check_same_model(s.names, s.params, module_, shard_problem, *group_);

  // Every rank starts from rank 0's parameters and buffers.
  {
    std::vector<Tensor> all = s.params;
    all.insert(all.end(), s.buffers.begin(), s.buffers.end());
    s.broadcast_from_root(all);
  }

  // Buckets in reverse registration order: backward produces the last layers' gradients first. There is one
  // open bucket per (dtype, device); it closes before a parameter that would overflow it and once it is full, so
  // a parameter larger than the cap sits alone.
  const size_t n = s.params.size();
  s.bucket_of.assign(n, -1);
  s.slot_of.assign(n, 0);
  s.ready.assign(n, 0);
  s.used.assign(n, 0);
  struct Open {
    std::vector<size_t> params;
    size_t bytes = 0;
  };
  using Key = std::tuple<int, int, int>;  // dtype, device type, device index
  std::map<Key, Open> open;
  std::vector<std::vector<size_t>> order;
  for (size_t r = n; r-- > 0;) {
    const Tensor& p = s.params[r];
    if (!p.requires_grad()) continue;
    Open& o = open[Key(int(p.dtype()), int(p.device().type), p.device().index)];
    size_t bytes = size_t(p.numel()) * element_size(p.dtype());
    if (!o.params.empty() && o.bytes + bytes > options_.bucket_cap_bytes) {
      order.push_back(std::move(o.params));
      o = Open{};
    }
    o.params.push_back(r);
    o.bytes += bytes;
    if (o.bytes >= options_.bucket_cap_bytes) {
      order.push_back(std::move(o.params));
      o = Open{};
    }
  }
  // Partly filled buckets go last, the one holding the latest-registered parameter first.
  std::vector<std::vector<size_t>> rest;
  for (auto& [key, o] : open)
    if (!o.params.empty()) rest.push_back(std::move(o.params));
  std::sort(rest.begin(), rest.end(), [](const auto& a, const auto& b) { return a.front() > b.front(); });
  for (auto& r : rest) order.push_back(std::move(r));

  s.assignment = order;
  s.buckets.resize(order.size());
  for (size_t bi = 0; bi < order.size(); ++bi) {
    State::Bucket& b = s.buckets[bi];
    b.params = order[bi];
    int64_t offset = 0;
    for (size_t k = 0; k < b.params.size(); ++k) {
      size_t i = b.params[k];
      s.bucket_of[i] = int64_t(bi);
      s.slot_of[i] = k;
      b.offsets.push_back(offset);
      offset += s.params[i].numel();
    }
    b.flags_offset = offset;
    const Tensor& first = s.params[b.params.front()];
    // On huge pages: MPI's shared-memory transfers then pin a few 2 MiB pages rather than hundreds of small ones,
    // which halved a 1 MiB bucket's all-reduce between two ranks here.
    b.buffer =
        zeros_on_huge_pages({offset + int64_t(b.params.size()) + 1}, TensorOptions(first.dtype(), first.device()));
  }

  std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < n; ++i) {
    if (s.bucket_of[i] < 0) continue;
    s.hooks.push_back(s.params[i].register_post_accumulate_grad_hook([weak, i](const Tensor& leaf) {
      if (auto st = weak.lock()) st->on_grad_ready(i, leaf, st);
    }));
  }
}

// Nothing is in flight outside a backward pass, and a pass still running keeps the state alive through its
// queued finalizer. The hooks go with the wrapper: a model wrapped again and again keeps none of the old ones.
// While an exception unwinds, the others are left to that error (or the timeout): no goodbye, which could throw.
DistributedDataParallel::~DistributedDataParallel() noexcept(false) {
  for (auto& hook : state_->hooks) hook.remove();
  state_->owner = nullptr;
  const bool goodbye = !state_->buckets.empty() && group_->size() > 1 && dist::is_initialized() &&
                       !join_context() && std::uncaught_exceptions() == 0;
  if (goodbye) state_->say_goodbye();
}

namespace {

// What a joined rank runs for DDP: each step of the others, their gradient all-reduces; at the end, the final model.
class DdpJoinHook : public JoinHook {
 public:
  explicit DdpJoinHook(std::shared_ptr<DistributedDataParallel::State> state) : state_(std::move(state)) {}
  void main_hook(const JoinRound& round) override { state_->shadow_pass(round); }
  void post_hook(bool is_last_joiner) override { state_->sync_final_model(is_last_joiner); }

 private:
  std::shared_ptr<DistributedDataParallel::State> state_;
};

}  // namespace

std::unique_ptr<JoinHook> DistributedDataParallel::join_hook(const JoinOptions& options) {
  state_->divide_by_initial_world_size = options.divide_by_initial_world_size;
  return std::make_unique<DdpJoinHook>(state_);
}

Device DistributedDataParallel::join_device() const {
  return state_->buckets.empty() ? Device::cpu() : state_->buckets.front().buffer.device();
}

int64_t DistributedDataParallel::steps() const { return state_->steps; }

const std::vector<std::vector<size_t>>& DistributedDataParallel::bucket_assignment() const {
  return state_->assignment;
}

DistributedDataParallel::NoSync::NoSync(DistributedDataParallel& ddp) : ddp_(ddp), prev_(ddp.state_->sync) {
  ddp_.state_->sync = false;
}

DistributedDataParallel::NoSync::~NoSync() { ddp_.state_->sync = prev_; }

}  // namespace braid::dist
