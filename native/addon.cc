// hsd_native: a thin N-API layer over llama.cpp. It loads models, runs llama_decode, turns logits into sampling
// distributions and rolls KV caches back; every decision lives in TypeScript (src/native/types.ts is the contract).
// llama.cpp itself is not linked: its libraries are loaded at run time from a folder the caller names
// (llama_api.h says why), so one build of this module serves every installed llama.cpp build.
//
// Module functions:
//   openLibraries(libDir) -> {ggmlBase, ggml, llama}   load libggml-base, libggml, libllama from libDir (once)
//   loadBackendPlugin(path) -> {loaded, name, gpuDevices, error}   one ggml backend plugin (e.g. libggml-cuda.so
//                                       from another package's folder); needs openLibraries first
//   loadBackends(libDir) -> devices   openLibraries(libDir) if not done yet, then the backend plugins in libDir (the
//                                     best CPU variant, and any GPU plugin there that loads), once
//   devices() -> [{name, description, type, memoryFree, memoryTotal}]
//   systemInfo() -> string            llama_print_system_info()
//   loadModel(path, options) -> Promise<NativeModelHandle>
//   rpcAvailable(), rpcProtocolVersion(), probeRpcServer[Sync](host, port, timeoutMs)   native/rpc.h
//   socketPair() -> [fd, fd], Channel  the link to a child process (native/channel.h)
//   trimMemory() -> bool               hand freed heap memory back to the OS (glibc's malloc_trim; false elsewhere)
#include <napi.h>

#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "addon.h"
#include "channel.h"
#include "context.h"
#include "llama_api.h"
#include "logging.h"
#include "model.h"
#include "rpc.h"

namespace hsd {
namespace {

bool gBackendsLoaded = false;
std::string gBackendsDir;
std::string gLibDir;  // where openLibraries() loaded llama.cpp from

const char* deviceType(ggml_backend_dev_t d) {
  switch (api::ggml_backend_dev_type(d)) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
    default: return "other";
  }
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = api::isOpen() ? api::ggml_backend_dev_count() : 0;
  Napi::Array out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    ggml_backend_dev_t d = api::ggml_backend_dev_get(i);
    size_t freeMem = 0, totalMem = 0;
    api::ggml_backend_dev_memory(d, &freeMem, &totalMem);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", api::ggml_backend_dev_name(d));
    o.Set("description", api::ggml_backend_dev_description(d));
    o.Set("type", deviceType(d));
    o.Set("memoryFree", static_cast<double>(freeMem));
    o.Set("memoryTotal", static_cast<double>(totalMem));
    out.Set(i, o);
  }
  return out;
}

void openFrom(Napi::Env env, const std::string& dir) {
  if (api::isOpen()) {
    if (dir != gLibDir)
      throw Napi::Error::New(env, "llama.cpp was already loaded from '" + gLibDir + "'; cannot switch to '" + dir +
                                      "' in the same process");
    return;
  }
  api::LibraryFiles files;
  std::string err = api::findLibraries(dir, files);
  if (err.empty()) err = api::open(files);
  if (!err.empty()) throw Napi::Error::New(env, err);
  gLibDir = dir;
  installLogCallback();  // before anything in llama.cpp/ggml can print
}

std::string stringArg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[0].As<Napi::String>().Utf8Value();
}

Napi::Value OpenLibraries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = stringArg(info, "openLibraries(libDir): libDir");
  openFrom(env, dir);
  api::LibraryFiles files;
  api::findLibraries(gLibDir, files);
  Napi::Object o = Napi::Object::New(env);
  o.Set("ggmlBase", files.ggmlBase);
  o.Set("ggml", files.ggml);
  o.Set("llama", files.llama);
  return o;
}

// One plugin by path, into ggml's registry. A plugin that cannot be loaded (libcuda.so.1 missing, …) leaves nothing
// behind and its reason comes back in `error`; one that loads but finds no device stays registered, harmlessly.
Napi::Value LoadBackendPlugin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = stringArg(info, "loadBackendPlugin(path): path");
  if (!api::isOpen()) throw Napi::Error::New(env, "loadBackendPlugin(path) needs openLibraries(libDir) first");
  clearThreadErrors();
  ggml_backend_reg_t reg = api::ggml_backend_load(path.c_str());
  std::string why = takeThreadErrors();
  uint32_t gpus = 0;
  if (reg != nullptr) {
    const size_t n = api::ggml_backend_reg_dev_count(reg);
    for (size_t i = 0; i < n; i++) {
      auto t = api::ggml_backend_dev_type(api::ggml_backend_reg_dev_get(reg, i));
      if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU) gpus++;
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("loaded", reg != nullptr);
  o.Set("name", reg != nullptr ? api::ggml_backend_reg_name(reg) : "");
  o.Set("gpuDevices", gpus);
  o.Set("error", reg != nullptr ? "" : (why.empty() ? "ggml_backend_load failed" : why));
  return o;
}

// Inside Node, ggml_backend_load_all() searches next to the executable and finds nothing: the plugins live next
// to the shared libs, so the caller passes that folder.
Napi::Value LoadBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = stringArg(info, "loadBackends(libDir): libDir");
  if (gBackendsLoaded) {
    if (dir != gBackendsDir)
      throw Napi::Error::New(env, "ggml backends were already loaded from '" + gBackendsDir + "'; cannot switch to '" + dir + "'");
    return Devices(info);
  }
  openFrom(env, dir);
  clearThreadErrors();
  api::ggml_backend_load_all_from_path(dir.c_str());
  if (api::ggml_backend_dev_count() == 0) {
    std::string why = takeThreadErrors();
    throw Napi::Error::New(env, "no ggml backend could be loaded from '" + dir + "'" + (why.empty() ? "" : ": " + why));
  }
  api::llama_backend_init();
  gBackendsLoaded = true;
  gBackendsDir = dir;
  return Devices(info);
}

Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
  if (!api::isOpen()) throw Napi::Error::New(info.Env(), "systemInfo() needs loadBackends(libDir) first");
  return Napi::String::New(info.Env(), api::llama_print_system_info());
}

// glibc keeps what llama.cpp frees when a model or context goes (weights' host copies, KV caches, compute buffers)
// in its heap instead of returning it: RSS grew by ~0.4 MiB per open/dispose cycle of the bundled family with no
// leak behind it (flat with MALLOC_TRIM_THRESHOLD_=0, or with this called after each dispose).
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->modelConstructor = Napi::Persistent(AddonModel::DefineClass(env));
  data->contextConstructor = Napi::Persistent(AddonContext::DefineClass(env));
  env.SetInstanceData<AddonData>(data);  // deleted by node-addon-api at env teardown

  exports.Set("openLibraries", Napi::Function::New(env, OpenLibraries, "openLibraries"));
  exports.Set("loadBackendPlugin", Napi::Function::New(env, LoadBackendPlugin, "loadBackendPlugin"));
  exports.Set("loadBackends", Napi::Function::New(env, LoadBackends, "loadBackends"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("loadModel", Napi::Function::New(env, AddonModel::Load, "loadModel"));
  registerRpcFunctions(env, exports);
  exports.Set("socketPair", Napi::Function::New(env, AddonChannel::SocketPair, "socketPair"));
  exports.Set("Channel", AddonChannel::DefineClass(env));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
  return exports;
}

bool backendsLoaded() { return gBackendsLoaded; }

}  // namespace hsd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return hsd::Init(env, exports); }
NODE_API_MODULE(hsd_native, InitModule)
