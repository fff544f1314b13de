// Element types. Float32 is the fast path; Float64 serves gradient checks; Int64 holds class labels and indices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>

#include "braid/core/error.h"

namespace braid {

enum class DType { Float32, Float64, Int64 };

inline size_t element_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    default: return 8;
  }
}

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    default: return "int64";
  }
}

inline bool is_floating(DType t) { return t != DType::Int64; }

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };

template <class T> struct type_tag { using type = T; };

// Calls fn(type_tag<T>{}) with T the C++ type of `t`; `op` names the caller in the error for other types.
template <class Fn>
decltype(auto) dispatch_floating(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(type_tag<float>{});
    case DType::Float64: return fn(type_tag<double>{});
    default: BRAID_FAIL(op, ": expected a floating-point tensor (float32 or float64), got ", dtype_name(t));
  }
}

template <class Fn>
decltype(auto) dispatch_all(DType t, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(type_tag<float>{});
    case DType::Float64: return fn(type_tag<double>{});
    default: return fn(type_tag<int64_t>{});
  }
}

}  // namespace braid
