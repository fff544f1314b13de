// The test driver of the multi-rank suites: every rank runs the same tests in the same order (they call
// collectives together). Rank 0 prints GoogleTest's report; the other ranks print only their failures, prefixed by
// their rank. Every rank exits non-zero when any rank had a failure.
#include <gtest/gtest.h>

#include <cstdio>

#include "braid/core/creation.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

namespace {

class FailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  braid::dist::init(argc, argv);
  int rank = braid::dist::rank();
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;

  braid::Tensor any = braid::from_vector(std::vector<int64_t>{failed});
  braid::dist::world()->all_reduce(any, braid::dist::ReduceOp::Max)->wait();
  int64_t failures = any.item<int64_t>();
  if (rank == 0 && failures && !failed) std::fprintf(stderr, "[rank 0] tests failed on another rank\n");
  braid::dist::finalize();
  return failures ? 1 : 0;
}
