// NativeModel: one llama_model, its vocabulary, and the contexts created on it.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <unordered_set>

#include "llama_api.h"

namespace hsd {

class AddonContext;

// Owns the llama_model. Shared (shared_ptr) by the JS model object, by every context created on it and so by any
// evaluation in flight: the model is freed only when the last of them lets go, so dispose() during a decode frees
// nothing under the worker thread. Touched from the JS thread only, except model/vocab (read-only in llama.cpp).
struct ModelHandle {
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  std::string path;
  bool vocabOnly = false;
  int32_t nVocab = 0;
  std::unordered_set<AddonContext*> contexts;   // live (not disposed) contexts, for dispose()
  ~ModelHandle();
};

class AddonModel : public Napi::ObjectWrap<AddonModel> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // loadModel(path, { gpuLayers?, vocabOnly?, rpcServers? }) -> Promise<model>
  static Napi::Value Load(const Napi::CallbackInfo& info);

  explicit AddonModel(const Napi::CallbackInfo& info);
  ~AddonModel() override;

 private:
  ModelHandle& live(Napi::Env env);  // throws when disposed
  void dispose(const char* reason);

  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Metadata(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value Detokenize(const Napi::CallbackInfo& info);
  Napi::Value TokenPiece(const Napi::CallbackInfo& info);
  Napi::Value IsEndOfGeneration(const Napi::CallbackInfo& info);
  Napi::Value CreateContext(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelHandle> handle_;
};

// Checks a model file before llama.cpp sees it: exists, is a regular file, starts with the GGUF magic, has a
// supported version, has a readable header, and is long enough for every tensor the header describes.
// Returns "" when fine, else a message naming the path. Runs off the JS thread.
std::string checkGgufFile(const std::string& path);

}  // namespace hsd
