// llama.cpp / ggml log routing.
//
// llama.cpp prints a lot while loading models; by default the addon swallows it (env HSD_LLAMA_LOG=1 prints it to
// stderr). Error-level lines are kept per thread either way, so a failed load can name llama.cpp's reason in the
// JS Error: loads run on worker threads, and each thread only sees the lines it logged itself.
#pragma once
#include <string>

namespace hsd {

// Installs the callback (idempotent). Called as soon as the llama.cpp libraries are loaded, before anything in
// them can print.
void installLogCallback();
// Forget the error lines this thread has collected so far.
void clearThreadErrors();
// The error lines this thread logged since clearThreadErrors(), trimmed; "" when none.
std::string takeThreadErrors();

}  // namespace hsd
