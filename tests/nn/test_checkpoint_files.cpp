// Checkpoint files left on disk: temporaries of killed savers are cleaned up, a failed save leaves nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../test_util.h"
#include "braid/core/creation.h"
#include "braid/nn/checkpoint.h"

using namespace braid;

namespace {

class CheckpointFilesTest : public braid::test::TempDirTest {
 protected:
  static void touch(const std::string& p) { std::ofstream(p) << "partial"; }
  bool exists(const std::string& name) const { return std::filesystem::exists(dir_ / name); }
  // A pid that belonged to a process that has exited and been reaped, so nothing owns it now.
  static pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
  }
};

TEST_F(CheckpointFilesTest, SaveRemovesTemporariesOfDeadSavers) {
  const std::string dead = std::to_string(dead_pid());
  // The parent of this test process is alive for as long as the test runs.
  const std::string live = std::to_string(::getppid());
  touch(path("ckpt.safetensors.tmp." + dead));
  touch(path("ckpt.safetensors.tmp." + live));
  touch(path("ckpt.safetensors.tmp.notapid"));
  touch(path("ckpt.safetensors.tmp.-1"));
  touch(path("other.safetensors.tmp." + dead));
  nn::save({{"x", ones({2})}}, path("ckpt.safetensors"));
  EXPECT_FALSE(exists("ckpt.safetensors.tmp." + dead)) << "a dead saver's temporary was left behind";
  EXPECT_TRUE(exists("ckpt.safetensors.tmp." + live)) << "a live saver's temporary was removed";
  EXPECT_TRUE(exists("ckpt.safetensors.tmp.notapid"));
  EXPECT_TRUE(exists("ckpt.safetensors.tmp.-1"));
  EXPECT_TRUE(exists("other.safetensors.tmp." + dead)) << "another checkpoint's temporary was removed";
  EXPECT_EQ(nn::load(path("ckpt.safetensors"))["x"].to_vector<float>(), (std::vector<float>{1, 1}));
}

TEST_F(CheckpointFilesTest, CheckCanSaveRemovesTemporariesOfDeadSavers) {
  const std::string dead = std::to_string(dead_pid());
  touch(path("state.safetensors.tmp." + dead));
  nn::check_can_save(path("state.safetensors"));
  EXPECT_FALSE(exists("state.safetensors.tmp." + dead));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0);
}

TEST_F(CheckpointFilesTest, CheckCanSaveRefusesPathsNoFileCanBeCreatedIn) {
  // procfs and sysfs let nobody create files, whatever the user; neither may the check leave anything anywhere.
  braid::test::expect_error([] { nn::check_can_save("/proc/x"); }, {"nn::check_can_save", "/proc/x"});
  braid::test::expect_error([] { nn::check_can_save("/nonexistent/dir/x.ckpt"); },
                            {"/nonexistent/dir/x.ckpt", "No such file or directory"});
  nn::check_can_save(path("fine.safetensors"));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 0) << "the check left its probe behind";
}

TEST_F(CheckpointFilesTest, RelativePathInTheWorkingFolder) {
  const std::string dead = std::to_string(dead_pid());
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  touch("rel.safetensors.tmp." + dead);
  nn::save({{"x", ones({1})}}, "rel.safetensors");
  std::filesystem::current_path(cwd);
  EXPECT_FALSE(exists("rel.safetensors.tmp." + dead));
  EXPECT_TRUE(exists("rel.safetensors"));
}

TEST_F(CheckpointFilesTest, FailedRenameRemovesItsTemporary) {
  // A non-empty folder under the checkpoint's name makes the final rename fail after the data was written.
  std::filesystem::create_directories(dir_ / "busy.safetensors" / "inside");
  braid::test::expect_error([&] { nn::save({{"x", ones({4})}}, path("busy.safetensors")); },
                            {"nn::save", "cannot rename", "busy.safetensors"});
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), {}), 1) << "the failed save left its temporary";
}

}  // namespace
