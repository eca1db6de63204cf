// Argument checks shared by the addon's entry points: every integer that crosses from JavaScript goes through
// integerValue (or isIntegerIn), so that NaN, fractions and out-of-range numbers are refused the same way everywhere.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace hsd {

// True when d is an integer in [min, max]. Checks finiteness and range before any cast: casting NaN or an
// out-of-range double to an integer type is undefined behaviour.
inline bool isIntegerIn(double d, int64_t min, int64_t max) {
  return std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(min) && d <= static_cast<double>(max);
}

// v as an integer in [min, max]; a TypeError when it is not a number, a RangeError naming `name` and the range
// otherwise.
inline int64_t integerValue(Napi::Env env, Napi::Value v, const std::string& name, int64_t min, int64_t max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!isIntegerIn(d, min, max))
    throw Napi::RangeError::New(env, name + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                         "], got " + v.ToString().Utf8Value());
  return static_cast<int64_t>(d);
}

}  // namespace hsd
