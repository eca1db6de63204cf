// The llama.cpp / ggml functions the addon calls, resolved at run time.
//
// The addon does not link llama.cpp: one prebuilt hsd_native.node has to work with whichever llama.cpp build is
// installed (the @node-llama-cpp/<platform>[-cuda|-vulkan] packages, or a from-source build), wherever npm put it,
// so it cannot carry a link-time path (rpath) to the libraries. Instead open() dlopen()s libggml-base, libggml
// and libllama from a folder chosen at run time and fills the table below; the code calls api::llama_decode(...)
// and so on. Each entry is declared with decltype(&::function) from the llama.cpp headers, so a signature change
// in the headers is a compile error here, not a crash at run time.
//
// Adding a function: one X(...) line, naming the library that exports it (nm -D --defined-only). A call that
// bypasses the table (plain llama_decode) compiles but leaves an undefined symbol: the addon is linked with
// -z now, so it then fails to load at once, in build-addon.mjs's smoke test.
#pragma once

#include <string>

#include "ggml-backend.h"
#include "gguf.h"
#include "llama.h"

// X(library, function). library: Base = libggml-base (gguf, tensors, devices), Ggml = libggml (the backend
// registry and plugin loader), Llama = libllama.
#define HSD_LLAMA_FUNCTIONS(X)                \
  X(Base, gguf_init_from_file)                \
  X(Base, gguf_free)                          \
  X(Base, gguf_get_data_offset)               \
  X(Base, gguf_get_n_tensors)                 \
  X(Base, gguf_get_tensor_offset)             \
  X(Base, gguf_get_tensor_size)               \
  X(Base, ggml_backend_dev_name)              \
  X(Base, ggml_backend_dev_description)       \
  X(Base, ggml_backend_dev_type)              \
  X(Base, ggml_backend_dev_memory)            \
  X(Base, ggml_backend_reg_name)              \
  X(Base, ggml_backend_reg_dev_count)         \
  X(Base, ggml_backend_reg_dev_get)           \
  X(Base, ggml_backend_reg_get_proc_address)  \
  X(Ggml, ggml_backend_dev_count)             \
  X(Ggml, ggml_backend_dev_get)               \
  X(Ggml, ggml_backend_load)                  \
  X(Ggml, ggml_backend_load_all_from_path)    \
  X(Ggml, ggml_backend_reg_by_name)           \
  X(Llama, llama_log_set)                     \
  X(Llama, llama_backend_init)                \
  X(Llama, llama_print_system_info)           \
  X(Llama, llama_model_default_params)        \
  X(Llama, llama_model_load_from_file)        \
  X(Llama, llama_model_free)                  \
  X(Llama, llama_model_get_vocab)             \
  X(Llama, llama_model_desc)                  \
  X(Llama, llama_model_n_ctx_train)           \
  X(Llama, llama_model_n_params)              \
  X(Llama, llama_model_size)                  \
  X(Llama, llama_model_meta_count)            \
  X(Llama, llama_model_meta_key_by_index)     \
  X(Llama, llama_model_meta_val_str_by_index) \
  X(Llama, llama_vocab_n_tokens)              \
  X(Llama, llama_vocab_bos)                   \
  X(Llama, llama_vocab_eos)                   \
  X(Llama, llama_vocab_is_eog)                \
  X(Llama, llama_tokenize)                    \
  X(Llama, llama_detokenize)                  \
  X(Llama, llama_token_to_piece)              \
  X(Llama, llama_context_default_params)      \
  X(Llama, llama_init_from_model)             \
  X(Llama, llama_free)                        \
  X(Llama, llama_n_ctx)                       \
  X(Llama, llama_get_memory)                  \
  X(Llama, llama_memory_seq_rm)               \
  X(Llama, llama_batch_init)                  \
  X(Llama, llama_batch_free)                  \
  X(Llama, llama_decode)                      \
  X(Llama, llama_get_logits_ith)

namespace hsd::api {

#define HSD_API_DECLARE(lib, fn) extern decltype(&::fn) fn;
HSD_LLAMA_FUNCTIONS(HSD_API_DECLARE)
#undef HSD_API_DECLARE

// Where the three libraries are (found in libDir by findLibraries()).
struct LibraryFiles {
  std::string ggmlBase, ggml, llama;
};

// The core libraries in dir: [lib]ggml-base[.*].<ext>, [lib]ggml[.*].<ext>, [lib]llama[.*].<ext> (node-llama-cpp
// names them libllama.v0.4.0.so, libllama.cuda.v0.4.0.so, …; a plain cmake build libllama.so), the shortest name
// of each. Returns "" when all three were found, else the reason.
std::string findLibraries(const std::string& dir, LibraryFiles& out);

// Loads the libraries (in dependency order, RTLD_NOW | RTLD_LOCAL) and resolves every function. "" on success,
// else the reason (which library or function). Once it succeeded, later calls do nothing and return "".
// The libraries are never unloaded: ggml keeps backend threads and plugin handles for the life of the process.
std::string open(const LibraryFiles& files);

bool isOpen();

}  // namespace hsd::api
