// SPDX-License-Identifier: BSD-3-Clause
// Result<T>: a value or a positive errno with a short static context string.
// Shaped like std::expected (GCC 12 has no C++23 <expected>). No exceptions.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace pmemfs {

// An errno plus a static description of where it arose ("journal: record too large").
struct Error {
  int code = 0;                  // positive errno
  const char* context = "";      // static storage only; never owned

  std::string Message() const {
    std::string m = context;
    if (!m.empty()) m += ": ";
    m += std::strerror(code);
    return m;
  }
};

[[nodiscard]] inline Error Err(int code, const char* context = "") { return Error{code, context}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(e) {}                  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  int code() const { return ok() ? 0 : std::get<1>(v_).code; }
  const Error& error() const { return std::get<1>(v_); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : e_(e) {}  // NOLINT

  bool ok() const { return e_.code == 0; }
  explicit operator bool() const { return ok(); }
  int code() const { return e_.code; }
  const Error& error() const { return e_; }

 private:
  Error e_{};
};

using Status = Result<void>;
inline Status Ok() { return Status(); }

}  // namespace pmemfs

// Propagate an error from an expression yielding Result<...>.
#define PMEMFS_TRY(expr)                              \
  do {                                                \
    auto&& _r = (expr);                               \
    if (!_r.ok()) return ::pmemfs::Error(_r.error()); \
  } while (0)

#define PMEMFS_CONCAT_INNER(a, b) a##b
#define PMEMFS_CONCAT(a, b) PMEMFS_CONCAT_INNER(a, b)
// Declare `lhs` from the value of a Result, or propagate its error.
#define PMEMFS_ASSIGN_OR_RETURN(lhs, expr) \
  PMEMFS_ASSIGN_OR_RETURN_IMPL(PMEMFS_CONCAT(_res_, __LINE__), lhs, expr)
#define PMEMFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return ::pmemfs::Error(tmp.error()); \
  lhs = std::move(tmp).value()
