// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status, which the Debian abseil
// (20220623) does not ship.
#ifndef HUBMETRICS_LIB_BASE_STATUS_MACROS_H_
#define HUBMETRICS_LIB_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define HM_STATUS_CONCAT_INNER_(a, b) a##b
#define HM_STATUS_CONCAT_(a, b) HM_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function if not OK.
#define RETURN_IF_ERROR(expr)                                 \
  do {                                                        \
    if (absl::Status hm_status_ = (expr); !hm_status_.ok()) { \
      return hm_status_;                                      \
    }                                                         \
  } while (false)

// `ASSIGN_OR_RETURN(auto x, F())`: evaluates F() (an absl::StatusOr<T>); returns
// its status if not OK, else moves its value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  HM_ASSIGN_OR_RETURN_IMPL_(HM_STATUS_CONCAT_(hm_statusor_, __LINE__), lhs, expr)

#define HM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) {                                \
    return std::move(statusor).status();               \
  }                                                    \
  lhs = std::move(statusor).value()

#endif  // HUBMETRICS_LIB_BASE_STATUS_MACROS_H_
