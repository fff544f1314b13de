// A job with a faulty rank, for the tests that check it ends instead of hanging. Rank 0 waits in an all_reduce
// that rank 1 never joins. `throw`: rank 1 throws an exception nobody catches (the terminate handler must abort
// the whole job). `hang`: rank 1 sleeps (rank 0's wait must give up after BRAID_DIST_TIMEOUT and abort the job).
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "braid/core/creation.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

int main(int argc, char** argv) {
  braid::dist::init(argc, argv);
  std::string mode = argc > 1 ? argv[1] : "throw";
  if (braid::dist::world_size() < 2) {
    std::fprintf(stderr, "run with at least 2 ranks\n");
    return 2;
  }
  if (braid::dist::rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (mode == "throw") throw std::runtime_error("deliberate failure on rank 1");
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  braid::Tensor t = braid::ones({4});
  braid::dist::world()->all_reduce(t)->wait();
  std::fprintf(stderr, "rank %d: the all_reduce completed, which it must not\n", braid::dist::rank());
  return 0;
}
