// Shared declarations of the addon's modules.
#pragma once
#include <napi.h>

namespace hsd {

// Per-environment data: the class constructors, so C++ can create JS objects (models after a load, contexts).
struct AddonData {
  Napi::FunctionReference modelConstructor;
  Napi::FunctionReference contextConstructor;
};

inline AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// True once loadBackends() succeeded (models can only be loaded after that).
bool backendsLoaded();

}  // namespace hsd
