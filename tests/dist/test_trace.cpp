// The Chrome-trace timeline: each rank's file is valid JSON holding exactly the pipeline's compute actions (with
// their stage and micro-batch), the sends and receives between the stages, the collectives of DDP and of the
// tensor-parallel layers, the waits that blocked; its clock offset to rank 0 is within the measured round trip; and
// a path that cannot be written fails on every rank, naming the file. Runs at any world size (every rank traces;
// the pipeline uses ranks 0 and 1, or one rank holding two stages when alone).
#include <braid/braid.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "braid/dist/pipeline_executor.h"
#include "braid/dist/trace.h"
#include "dist_test_util.h"

namespace braid {
namespace {

using nlohmann::json;

// Runs `body` with a trace recorded to a file of this process's own, and returns that file's parsed contents.
template <class Fn>
json traced(const std::string& name, Fn&& body) {
  const std::string base = testing::TempDir() + "braid_trace_" + name + "_" + std::to_string(::getpid()) + ".json";
  dist::start_trace(base);
  EXPECT_TRUE(dist::is_tracing());
  try {
    body();
  } catch (...) {
    dist::stop_trace();  // the next test starts its own
    throw;
  }
  dist::stop_trace();
  EXPECT_FALSE(dist::is_tracing());
  const std::string file = dist::trace_path(base, dist::rank());
  std::ifstream in(file);
  EXPECT_TRUE(in.good()) << "no trace file " << file;
  json doc = json::parse(in, nullptr, false);
  std::remove(file.c_str());
  EXPECT_FALSE(doc.is_discarded()) << file << " is not valid JSON";
  return doc;
}

// The complete ("X") events, checked to be on this rank.
std::vector<json> complete_events(const json& doc) {
  std::vector<json> events;
  for (const json& e : doc.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    EXPECT_EQ(e.at("pid").get<int>(), dist::rank());
    EXPECT_GE(e.at("dur").get<double>(), 0.0);
    events.push_back(e);
  }
  return events;
}

std::vector<json> events_named(const json& doc, const std::string& name) {
  std::vector<json> out;
  for (const json& e : complete_events(doc))
    if (e.at("name") == name) out.push_back(e);
  return out;
}

TEST(Trace, PathCarriesTheRank) {
  EXPECT_EQ(dist::trace_path("out/trace.json", 2), "out/trace.rank2.json");
  EXPECT_EQ(dist::trace_path("trace", 0), "trace.rank0.json");
}

TEST(Trace, UnwritablePathFailsOnEveryRankNamingTheFile) {
  const std::string base = "/nonexistent_braid_dir/trace.json";
  std::string message = dist_test::error_of([&] { dist::start_trace(base); });
  dist_test::expect_contains(message, "/nonexistent_braid_dir/trace.rank0.json");
  EXPECT_FALSE(dist::is_tracing());
}

TEST(Trace, ClockOffsetToRankZeroIsWithinTheRoundTrip) {
  json doc = traced("clock", [] {});
  const json& other = doc.at("otherData");
  EXPECT_EQ(other.at("rank").get<int>(), dist::rank());
  EXPECT_EQ(other.at("world_size").get<int>(), dist::world_size());
  // The ranks share one host and so one steady clock: the true offset is zero, and the estimate is off by at most
  // half the round trip it was taken from.
  const double offset = other.at("clock_offset_us").get<double>(), trip = other.at("clock_round_trip_us").get<double>();
  EXPECT_LE(std::abs(offset), trip / 2 + 1.0) << "round trip " << trip << " us";
  if (dist::rank() == 0) {
    EXPECT_EQ(offset, 0.0);
  }
}

// The stages of a 4-layer MLP: two stages over ranks 0 and 1, or both on one rank when the world has one.
TEST(Trace, PipelineStepRecordsEveryComputeActionAndTheTransfers) {
  const int p = std::min(dist::world_size(), 2);
  auto group = dist::new_group(p == 2 ? std::vector<int>{0, 1} : std::vector<int>{0});
  const int v = 3 - p;  // two stages in all
  const int microbatches = 4;
  dist::Schedule schedule = p == 2 ? dist::with_communication(dist::one_f_one_b(2, microbatches))
                                   : dist::with_communication(dist::interleaved_one_f_one_b(1, v, microbatches));
  json doc = traced("pipeline", [&] {
    if (!group->is_member()) return;
    manual_seed(5);
    nn::Sequential mlp;
    mlp->push_back(nn::Linear(6, 8));
    mlp->push_back(nn::Tanh());
    mlp->push_back(nn::Linear(8, 3));
    mlp->push_back(nn::Tanh());
    std::vector<nn::Sequential> stages;
    for (int s = group->rank(); s < 2; s += p) stages.push_back(mlp->slice(2 * s, 2 * s + 2));
    dist::PipelineExecutor executor(stages, group, schedule, [](const Tensor& out, const Tensor& target) {
      return nn::mse_loss(out, target);
    });
    executor.step(randn({8, 6}), randn({8, 3}));
  });
  if (!group->is_member()) {
    EXPECT_TRUE(events_named(doc, "send").empty());
    return;
  }

  // Compute events: exactly this rank's F/I/W/B actions, by kind, stage and micro-batch.
  using Key = std::tuple<std::string, int, int>;
  std::vector<Key> expected, got;
  int sends = 0, recvs = 0;
  for (const dist::Action& a : schedule.actions[size_t(group->rank())]) {
    if (dist::is_compute(a.kind)) expected.emplace_back(dist::to_string(a.kind), a.stage, a.microbatch);
    sends += a.kind == dist::ActionKind::SendActivation || a.kind == dist::ActionKind::SendGradient;
    recvs += a.kind == dist::ActionKind::RecvActivation || a.kind == dist::ActionKind::RecvGradient;
  }
  for (const json& e : complete_events(doc)) {
    if (e.at("cat") != "compute" || e.at("name").get<std::string>().starts_with("wait")) continue;
    const json& args = e.at("args");
    Key key{args.at("op").get<std::string>(), args.at("stage").get<int>(), args.at("microbatch").get<int>()};
    EXPECT_EQ(e.at("name").get<std::string>(), std::get<0>(key) + " s" + std::to_string(std::get<1>(key)) + " mb" +
                                                    std::to_string(std::get<2>(key)));
    EXPECT_EQ(e.at("tid").get<int>(), 0);
    got.push_back(key);
  }
  std::sort(expected.begin(), expected.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, expected);
  ASSERT_EQ(int(expected.size()), 2 * microbatches * v);

  // Transfers: at least one event per SEND_*/RECV_* action (the first step may add the boundary's shape), on a
  // communication lane, naming the other rank and the bytes moved.
  const int other = 1 - dist::rank();
  int send_events = 0, recv_events = 0;
  for (const char* op : {"send", "recv"})
    for (const json& e : events_named(doc, op)) {
      (std::string(op) == "send" ? send_events : recv_events)++;
      EXPECT_GE(e.at("tid").get<int>(), 1);
      EXPECT_EQ(e.at("args").at("peer").get<int>(), other);
      EXPECT_GT(e.at("args").at("bytes").get<int64_t>(), 0);
    }
  EXPECT_GE(send_events, sends);
  EXPECT_GE(recv_events, recvs);
  if (p == 2) {
    EXPECT_GT(sends + recvs, 0);
  }
}

// Rank 1 waits for a message rank 0 sends 50 ms late: the wait and the receive span that time.
TEST(Trace, BlockedWaitIsAnEvent) {
  REQUIRE_RANKS(2);
  auto group = dist::new_group({0, 1});
  json doc = traced("wait", [&] {
    if (!group->is_member()) return;
    Tensor t = zeros({16});
    if (group->rank() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      group->send(t, 1, 7)->wait();
    } else {
      dist::WorkHandle work = group->recv(t, 0, 7);
      work->wait();
    }
  });
  if (!group->is_member()) return;
  if (dist::rank() == 0) {
    ASSERT_EQ(events_named(doc, "send").size(), 1u);
    EXPECT_EQ(events_named(doc, "send")[0].at("args").at("bytes").get<int64_t>(), 64);
    return;
  }
  std::vector<json> waits = events_named(doc, "wait recv"), recvs = events_named(doc, "recv");
  ASSERT_EQ(waits.size(), 1u);
  ASSERT_EQ(recvs.size(), 1u);
  EXPECT_GE(waits[0].at("dur").get<double>(), 30e3);  // microseconds
  EXPECT_EQ(waits[0].at("tid").get<int>(), 0);
  EXPECT_GE(recvs[0].at("dur").get<double>(), 30e3);
  EXPECT_EQ(recvs[0].at("args").at("tag").get<int>(), 7);
}

int count_all_reduces(const json& doc) {
  int n = 0;
  for (const json& e : events_named(doc, "all_reduce")) {
    EXPECT_GT(e.at("args").at("bytes").get<int64_t>(), 0);
    ++n;
  }
  return n;
}

TEST(Trace, DdpStepEmitsItsCollectives) {
  REQUIRE_RANKS(2);
  json doc = traced("ddp", [] {
    manual_seed(2);
    nn::Linear model(5, 3);
    dist::DistributedDataParallel ddp(*model);
    nn::mse_loss(model(randn({4, 5})), randn({4, 3})).backward();
  });
  EXPECT_FALSE(events_named(doc, "broadcast").empty()) << "the parameters' broadcast at construction";
  EXPECT_GE(count_all_reduces(doc), 1) << "the gradients' all-reduce";
}

TEST(Trace, TensorParallelLayersEmitTheirAllReduces) {
  REQUIRE_RANKS(2);
  json doc = traced("tp", [] {
    manual_seed(3);
    dist::ColumnParallelLinear col(6, 12, dist::world());  // 12 features split over 2, 3 or 4 ranks
    dist::RowParallelLinear row(12, 4, dist::world());
    Tensor x = randn({5, 6}).requires_grad_(true);
    sum(row(col(x))).backward();
  });
  // The row layer's forward and the column layer's input gradient.
  EXPECT_GE(count_all_reduces(doc), 2);
}

TEST(Trace, NothingIsRecordedWhenOff) {
  EXPECT_FALSE(dist::is_tracing());
  dist::trace::record("F s0 mb0", dist::trace::Lane::Compute, dist::trace::Clock::now(), dist::trace::Clock::now());
  json doc = traced("off", [] {});
  EXPECT_TRUE(complete_events(doc).empty()) << "an event recorded before start_trace was kept";
}

}  // namespace
}  // namespace braid
