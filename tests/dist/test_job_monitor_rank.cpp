// What the job monitor does when a rank goes missing, for the CTest entries that run this program under mpiexec with 2
// ranks (argv[1] picks the case). Rank 0 waits in a collective that rank 1 never issues:
//   return_error  rank 1 catches an error and returns 1 from main (finalize at exit): its goodbye ends the job.
//   recv_error    the same while rank 0 waits in a recv from rank 1 (ended a short grace after rank 1's goodbye).
//   exit_now      rank 1 ends with std::_Exit(1), no finalize: mpiexec ends the job.
//   skip          rank 1 runs the first all_reduce, then sleeps instead of the second: the timeout report names
//                 the operation, its seq no., the rank that did not arrive and the last operations.
// And one that must exit 0:
//   uneven_end    a correct program whose ranks finalize seconds apart (rank 0 still receiving rank 1's last
//                 message): the goodbye must not end it.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "braid/core/creation.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

namespace {

void wait_forever() { std::this_thread::sleep_for(std::chrono::seconds(120)); }

int uneven_end(braid::dist::ProcessGroup& world, int rank) {
  braid::Tensor t = braid::ones({4});
  for (int i = 0; i < 3; ++i) world.all_reduce(t)->wait();
  braid::Tensor msg = braid::full({4}, 7.0);
  if (rank == 1) {
    world.send(msg, 0)->wait();
  } else {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // rank 1 has left by now
    braid::Tensor got = braid::zeros({4});
    world.recv(got, 1)->wait();
    std::this_thread::sleep_for(std::chrono::seconds(3));  // past the monitor's grace for send/recv
    if (got.to_vector<float>()[0] != 7.0f || t.to_vector<float>()[0] != 8.0f) {
      std::fprintf(stderr, "rank 0: wrong values\n");
      return 1;
    }
  }
  braid::dist::finalize();
  std::printf("rank %d: clean end\n", rank);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  braid::dist::init(argc, argv);
  std::string mode = argc > 1 ? argv[1] : "return_error";
  int rank = braid::dist::rank();
  if (braid::dist::world_size() != 2) {
    std::fprintf(stderr, "run with 2 ranks\n");
    return 2;
  }
  auto world = braid::dist::world();
  if (mode == "uneven_end") return uneven_end(*world, rank);

  braid::Tensor t = braid::ones({4});
  if (mode == "skip") world->all_reduce(t)->wait();
  if (rank == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    if (mode == "return_error" || mode == "recv_error") {
      try {
        throw std::runtime_error("deliberate failure on rank 1");
      } catch (const std::exception& e) {
        std::fprintf(stderr, "rank 1: %s\n", e.what());
        return 1;
      }
    }
    if (mode == "exit_now") std::_Exit(1);
    wait_forever();
    return 0;
  }
  if (mode == "recv_error")
    world->recv(t, 1)->wait();
  else
    world->all_reduce(t)->wait();
  std::fprintf(stderr, "rank %d: the operation completed, which it must not\n", rank);
  return 0;
}
