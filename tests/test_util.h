// Helpers shared by the test suites: checking that a call throws braid::Error and what the message says, the names
// of a named list, an optimizer's state as numbers, and a fixture with a scratch folder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "braid/core/error.h"

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "expected \"" << (haystack) << "\" to contain \"" << (needle) << "\""

namespace braid::test {

// The message of the braid::Error that f throws (a test failure, and "", if it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a braid::Error";
  return "";
}

// Expects f to throw braid::Error whose message contains each of `parts`.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  std::string msg = error_of(f);
  for (const auto& part : parts) EXPECT_CONTAINS(msg, part);
}

// The names of a list of (name, value) pairs, as named_parameters() or named_modules() return.
template <class T>
std::vector<std::string> names_of(const std::vector<std::pair<std::string, T>>& named) {
  std::vector<std::string> out;
  for (const auto& [n, _] : named) out.push_back(n);
  return out;
}

// An optimizer's whole state (its group's hyper-parameters, each parameter's state tensors) as plain numbers, to
// compare two optimizers, or one before and after a call. A template, so this header needs no optimizer header.
template <class Optimizer>
std::map<std::string, std::vector<double>> optimizer_values(const Optimizer& opt) {
  std::map<std::string, std::vector<double>> out;
  auto s = opt.state_dict();
  for (const auto& [k, v] : s.param_groups.at(0).options) out["group." + k] = {v};
  for (const auto& [i, state] : s.state)
    for (const auto& [k, t] : state) out[std::to_string(i) + "." + k] = t.template to_vector<double>();
  return out;
}

// A fresh folder per test (named after the suite, the process and the test), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "braid_" + std::string(info->test_suite_name()) + "_" + std::to_string(::getpid()) + "_" +
                       info->name();
    // One folder even for a parameterised test ("Suite/Test/Param"), so TearDown removes all of it.
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

}  // namespace braid::test
