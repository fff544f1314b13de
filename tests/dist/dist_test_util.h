// Helpers the multi-rank test suites share: skipping a test the world is too small for, and reading the
// braid::Error a call must throw on this rank.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "braid/core/error.h"
#include "braid/dist/init.h"

#define REQUIRE_RANKS(n)                                                              \
  do {                                                                                \
    if (braid::dist::world_size() < (n)) GTEST_SKIP() << "needs " << (n) << " ranks"; \
  } while (0)

namespace braid::dist_test {

// Runs `call` and returns the message of the braid::Error it must throw (a failure naming this rank if none).
template <class Fn>
std::string error_of(Fn&& call) {
  try {
    call();
  } catch (const braid::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no braid::Error on rank " << braid::dist::rank();
  return "";
}

inline void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

}  // namespace braid::dist_test
