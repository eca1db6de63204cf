// hsd_native: a thin N-API layer over llama.cpp. It loads models, runs llama_decode, turns logits into sampling
// distributions and rolls KV caches back; every decision lives in TypeScript (src/native/types.ts is the contract).
//
// Module functions:
//   loadBackends(libDir) -> devices   load the ggml backend plugins (CPU variants, CUDA, ...) from libDir, once
//   devices() -> [{name, description, type, memoryFree, memoryTotal}]
//   systemInfo() -> string            llama_print_system_info()
//   loadModel(path, options) -> Promise<NativeModelHandle>
//   trimMemory() -> bool               hand freed heap memory back to the OS (glibc's malloc_trim; false elsewhere)
#include <napi.h>

#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "addon.h"
#include "context.h"
#include "ggml-backend.h"
#include "llama.h"
#include "logging.h"
#include "model.h"

namespace hsd {
namespace {

bool gBackendsLoaded = false;
std::string gBackendsDir;

const char* deviceType(ggml_backend_dev_t d) {
  switch (ggml_backend_dev_type(d)) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU: return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return "accel";
    default: return "other";
  }
}

Napi::Value Devices(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = ggml_backend_dev_count();
  Napi::Array out = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) {
    ggml_backend_dev_t d = ggml_backend_dev_get(i);
    size_t freeMem = 0, totalMem = 0;
    ggml_backend_dev_memory(d, &freeMem, &totalMem);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", ggml_backend_dev_name(d));
    o.Set("description", ggml_backend_dev_description(d));
    o.Set("type", deviceType(d));
    o.Set("memoryFree", static_cast<double>(freeMem));
    o.Set("memoryTotal", static_cast<double>(totalMem));
    out.Set(i, o);
  }
  return out;
}

// Inside Node, ggml_backend_load_all() searches next to the executable and finds nothing: the plugins live next
// to the shared libs, so the caller passes that folder (build/native-config.json libDir).
Napi::Value LoadBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadBackends(libDir): libDir must be a string");
  std::string dir = info[0].As<Napi::String>().Utf8Value();
  if (gBackendsLoaded) {
    if (dir != gBackendsDir)
      throw Napi::Error::New(env, "ggml backends were already loaded from '" + gBackendsDir + "'; cannot switch to '" + dir + "'");
    return Devices(info);
  }
  clearThreadErrors();
  ggml_backend_load_all_from_path(dir.c_str());
  if (ggml_backend_dev_count() == 0) {
    std::string why = takeThreadErrors();
    throw Napi::Error::New(env, "no ggml backend could be loaded from '" + dir + "'" + (why.empty() ? "" : ": " + why));
  }
  llama_backend_init();
  gBackendsLoaded = true;
  gBackendsDir = dir;
  return Devices(info);
}

Napi::Value SystemInfo(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), llama_print_system_info()); }

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
  installLogCallback();  // before anything in llama.cpp/ggml can print
  auto* data = new AddonData();
  data->modelConstructor = Napi::Persistent(AddonModel::DefineClass(env));
  data->contextConstructor = Napi::Persistent(AddonContext::DefineClass(env));
  env.SetInstanceData<AddonData>(data);  // deleted by node-addon-api at env teardown

  exports.Set("loadBackends", Napi::Function::New(env, LoadBackends, "loadBackends"));
  exports.Set("devices", Napi::Function::New(env, Devices, "devices"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("loadModel", Napi::Function::New(env, AddonModel::Load, "loadModel"));
  exports.Set("trimMemory", Napi::Function::New(env, TrimMemory, "trimMemory"));
  return exports;
}

bool backendsLoaded() { return gBackendsLoaded; }

}  // namespace hsd

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return hsd::Init(env, exports); }
NODE_API_MODULE(hsd_native, InitModule)
