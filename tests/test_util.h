// Helpers shared by the test suites: checking that a call throws braid::Error and what the message says.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
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

}  // namespace braid::test
