// braid::Error is the one exception family of Braid, defined here in kernels/ (the bottom layer) so every layer
// throws it. BRAID_CHECK(cond, parts...) throws it with the parts streamed into the message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace braid {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace braid

#define BRAID_CHECK(cond, ...)                                          \
  do {                                                                  \
    if (!(cond)) throw ::braid::Error(::braid::detail::concat(__VA_ARGS__)); \
  } while (0)

#define BRAID_FAIL(...) throw ::braid::Error(::braid::detail::concat(__VA_ARGS__))
