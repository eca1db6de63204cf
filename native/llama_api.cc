#include "llama_api.h"

#include <filesystem>
#include <system_error>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#endif

namespace hsd::api {

#define HSD_API_DEFINE(lib, fn) decltype(&::fn) fn = nullptr;
HSD_LLAMA_FUNCTIONS(HSD_API_DEFINE)
#undef HSD_API_DEFINE

namespace {

namespace fs = std::filesystem;

#ifdef _WIN32
// Windows: written to the same plan, never built or run (no Windows machine here).
using Handle = HMODULE;
constexpr const char* kExt = ".dll";

Handle openLibrary(const std::string& path, std::string& err) {
  // The library's own dependencies are looked up in its folder first (the DLLs of one build sit together).
  Handle h = LoadLibraryExW(fs::u8path(path).wstring().c_str(), nullptr,
                            LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS);
  if (h == nullptr) err = "LoadLibraryEx failed with error " + std::to_string(GetLastError());
  return h;
}
void* findSymbol(Handle h, const char* name) { return reinterpret_cast<void*>(GetProcAddress(h, name)); }
#else
using Handle = void*;
#ifdef __APPLE__
constexpr const char* kExt = ".dylib";
#else
constexpr const char* kExt = ".so";
#endif

Handle openLibrary(const std::string& path, std::string& err) {
  // RTLD_NOW: a missing dependency or symbol fails here, with dlerror()'s reason, not at the first call.
  // RTLD_LOCAL: nothing needs these symbols in the global scope. Backend plugins loaded later (ggml_backend_load)
  // name libggml-base as a dependency and the dynamic loader matches it to this copy by its soname, so a process
  // holds one libggml-base even when a plugin comes from another package's folder.
  Handle h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    err = e != nullptr ? e : "dlopen failed";
  }
  return h;
}
void* findSymbol(Handle h, const char* name) { return dlsym(h, name); }
#endif

bool gOpen = false;

// "libllama.v0.4.0.so" matches stem "llama"; "libllama-common.so" and "libggml-cpu-x64.so" do not.
bool matches(const std::string& name, const std::string& stem) {
  const std::string ext = kExt;
  for (const std::string& prefix : {"lib" + stem, stem}) {
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    if (rest == ext) return true;
    if (rest.size() > ext.size() && rest[0] == '.' && rest.compare(rest.size() - ext.size(), ext.size(), ext) == 0)
      return true;
  }
  return false;
}

}  // namespace

std::string findLibraries(const std::string& dir, LibraryFiles& out) {
  std::error_code ec;
  if (!fs::is_directory(fs::u8path(dir), ec)) return "llama.cpp library folder '" + dir + "' does not exist";
  std::string* slots[] = {&out.ggmlBase, &out.ggml, &out.llama};
  const char* stems[] = {"ggml-base", "ggml", "llama"};
  for (auto* s : slots) s->clear();
  for (fs::directory_iterator it(fs::u8path(dir), ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;  // follows symlinks (libllama.so -> libllama.so.0.0.1)
    const std::string name = it->path().filename().u8string();
    for (int i = 0; i < 3; i++) {
      if (!matches(name, stems[i])) continue;
      const std::string full = it->path().u8string();
      if (slots[i]->empty() || full.size() < slots[i]->size()) *slots[i] = full;
    }
  }
  if (ec) return "cannot list llama.cpp library folder '" + dir + "': " + ec.message();
  for (int i = 0; i < 3; i++)
    if (slots[i]->empty()) return std::string("no ") + stems[i] + " library (" + kExt + ") in '" + dir + "'";
  return "";
}

std::string open(const LibraryFiles& files) {
  if (gOpen) return "";
  std::string err;
  // Dependency order: libggml needs libggml-base, libllama needs both; each finds the one loaded before it.
  // The handle variables are named after the X-macro's library tags.
  const Handle Base = openLibrary(files.ggmlBase, err);
  if (Base == nullptr) return "cannot load " + files.ggmlBase + ": " + err;
  const Handle Ggml = openLibrary(files.ggml, err);
  if (Ggml == nullptr) return "cannot load " + files.ggml + ": " + err;
  const Handle Llama = openLibrary(files.llama, err);
  if (Llama == nullptr) return "cannot load " + files.llama + ": " + err;
  const std::string& BasePath = files.ggmlBase;
  const std::string& GgmlPath = files.ggml;
  const std::string& LlamaPath = files.llama;
#define HSD_API_RESOLVE(lib, fn)                                                                   \
  fn = reinterpret_cast<decltype(fn)>(findSymbol(lib, #fn));                                      \
  if (fn == nullptr)                                                                               \
    return std::string(#fn) + " is missing from " + lib##Path +                                   \
           ": not the llama.cpp release the addon was compiled against (rebuild it: npm run build:addon)";
  HSD_LLAMA_FUNCTIONS(HSD_API_RESOLVE)
#undef HSD_API_RESOLVE
  gOpen = true;
  return "";
}

bool isOpen() { return gOpen; }

}  // namespace hsd::api
