#include "flight_recorder.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace braid::dist::detail {

// The coarse clock (a few milliseconds' resolution) reads a word of memory; a steady_clock read costs hundreds of
// nanoseconds on some virtual machines, several times what the rest of a record does.
int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

const char* op_state_name(OpState state) {
  switch (state) {
    case OpState::Issued:
      return "queued";
    case OpState::Started:
      return "running";
    case OpState::Completed:
      return "completed";
    case OpState::Failed:
      return "failed";
  }
  return "?";
}

FlightRecorder& FlightRecorder::instance() {
  static FlightRecorder* recorder = new FlightRecorder();
  return *recorder;
}

void FlightRecorder::issued(const void* key, int64_t group, const std::vector<int>& ranks, const Signature& sig,
                            const std::string& label) {
  const int64_t now = now_ns();
  std::lock_guard<std::mutex> lock(mutex_);
  RecordedOp& op = ring_[next_id_ % kCapacity];
  op.id = next_id_++;
  op.key = key;
  op.group = group;
  op.seq = sig.seq;
  op.sig = sig;
  const size_t n = std::min(label.size(), op.label.size() - 1);
  std::memcpy(op.label.data(), label.data(), n);
  op.label[n] = '\0';
  op.state = OpState::Issued;
  op.issued_ns = now;
  op.started_ns = op.ended_ns = 0;
  if (group < 0) return;
  // A new group id: the only time recording allocates.
  if (size_t(group) >= ranks_.size()) {
    ranks_.resize(size_t(group) + 1);
    issued_.resize(size_t(group) + 1, 0);
  }
  if (ranks_[size_t(group)].empty()) ranks_[size_t(group)] = ranks;
  issued_[size_t(group)] = std::max(issued_[size_t(group)], op.seq);
}

RecordedOp* FlightRecorder::find(const void* key) {
  for (uint64_t id = next_id_ - 1, seen = 0; id > 0 && seen < kCapacity; --id, ++seen) {
    RecordedOp& op = ring_[id % kCapacity];
    if (op.key == key && !op.finished()) return &op;
  }
  return nullptr;  // overwritten by later operations
}

void FlightRecorder::mark(const void* key, OpState state) {
  const int64_t now = now_ns();
  std::lock_guard<std::mutex> lock(mutex_);
  RecordedOp* op = find(key);
  if (!op) return;
  op->state = state;
  if (state == OpState::Started)
    op->started_ns = now;
  else if (state != OpState::Issued)
    op->ended_ns = now;
}

std::vector<RecordedOp> FlightRecorder::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<RecordedOp> out;
  for (uint64_t id = next_id_ > kCapacity ? next_id_ - kCapacity : 1; id < next_id_; ++id)
    out.push_back(ring_[id % kCapacity]);
  return out;
}

std::vector<std::pair<int64_t, int64_t>> FlightRecorder::issued_counts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t g = 0; g < issued_.size(); ++g)
    if (issued_[g] > 0) out.emplace_back(int64_t(g), issued_[g]);
  return out;
}

int64_t FlightRecorder::issued_on(int64_t group) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return group >= 0 && size_t(group) < issued_.size() ? issued_[size_t(group)] : 0;
}

std::vector<int> FlightRecorder::group_ranks(int64_t group) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return group >= 0 && size_t(group) < ranks_.size() ? ranks_[size_t(group)] : std::vector<int>();
}

const RecordedOp* FlightRecorder::oldest_unfinished(const std::vector<RecordedOp>& ops) const {
  const RecordedOp* queued = nullptr;
  for (const RecordedOp& op : ops) {
    if (op.state == OpState::Started) return &op;
    if (op.state == OpState::Issued && !queued) queued = &op;
  }
  return queued;
}

std::string FlightRecorder::describe(const RecordedOp& op) const {
  std::string what = op.label[0] ? std::string(op.label.data()) : detail::describe(op.sig);
  if (op.seq > 0) what += " #" + std::to_string(op.seq);
  return what + " on group " + std::to_string(op.group) + " " + ranks_str(group_ranks(op.group));
}

namespace {

std::string seconds(int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f s", double(ns) * 1e-9);
  return text;
}

}  // namespace

std::string FlightRecorder::lines(size_t count, const std::string& indent) const {
  std::vector<RecordedOp> ops = snapshot();
  const int64_t now = now_ns();
  std::string out;
  for (size_t i = ops.size() > count ? ops.size() - count : 0; i < ops.size(); ++i) {
    const RecordedOp& op = ops[i];
    out += indent + describe(op) + ": " + op_state_name(op.state);
    if (op.finished())
      out += " after " + seconds(op.ended_ns - op.issued_ns) + ", " + seconds(now - op.ended_ns) + " ago";
    else
      out += " since " + seconds(now - (op.started_ns ? op.started_ns : op.issued_ns));
    out += "\n";
  }
  return out.empty() ? indent + "(no operations)\n" : out;
}

}  // namespace braid::dist::detail
