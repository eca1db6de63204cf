#include "logging.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "llama_api.h"

namespace hsd {
namespace {

thread_local std::string tErrors;
thread_local ggml_log_level tLastLevel = GGML_LOG_LEVEL_NONE;
bool gPrint = false;
constexpr size_t kMaxKept = 2000;  // enough for a reason, not a whole log

void logCallback(ggml_log_level level, const char* text, void* /*user*/) {
  if (text == nullptr) return;
  if (gPrint) std::fputs(text, stderr);
  // CONT continues the previous line at the previous level.
  ggml_log_level effective = level == GGML_LOG_LEVEL_CONT ? tLastLevel : level;
  if (level != GGML_LOG_LEVEL_CONT) tLastLevel = level;
  if (effective == GGML_LOG_LEVEL_ERROR && tErrors.size() < kMaxKept) tErrors.append(text, strnlen(text, kMaxKept));
}

}  // namespace

void installLogCallback() {
  static bool done = false;
  if (done) return;
  done = true;
  const char* env = std::getenv("HSD_LLAMA_LOG");
  gPrint = env != nullptr && std::strcmp(env, "") != 0 && std::strcmp(env, "0") != 0;
  api::llama_log_set(logCallback, nullptr);  // also sets ggml's logger
}

void clearThreadErrors() { tErrors.clear(); }

std::string takeThreadErrors() {
  std::string s;
  s.swap(tErrors);
  // one line: collapse newlines, trim
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace hsd
