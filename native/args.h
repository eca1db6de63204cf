// Argument checks shared by the addon's entry points.
#pragma once

#include <cmath>
#include <cstdint>

namespace hsd {

// True when d is an integer in [min, max]. Checks finiteness and range before any cast: casting NaN or an
// out-of-range double to an integer type is undefined behaviour.
inline bool isIntegerIn(double d, int64_t min, int64_t max) {
  return std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(min) && d <= static_cast<double>(max);
}

}  // namespace hsd
