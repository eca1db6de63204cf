#include "model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "addon.h"
#include "args.h"
#include "context.h"
#include "llama_api.h"
#include "logging.h"
#include "rpc.h"

namespace hsd {

ModelHandle::~ModelHandle() {
  if (model != nullptr) api::llama_model_free(model);
}

// ---------------------------------------------------------------------------------------------------------------
// File checks (before llama.cpp, which is not built to survive arbitrary bytes).

std::string checkGgufFile(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string q = "'" + path + "'";
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return "model file " + q + " does not exist" + (ec ? " (" + ec.message() + ")" : "");
  if (!fs::is_regular_file(st)) return "model path " + q + " is not a regular file";
  const uintmax_t size = fs::file_size(path, ec);
  if (ec) return "cannot read the size of model file " + q + ": " + ec.message();

  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "cannot open model file " + q + ": " + std::strerror(errno);
  unsigned char hdr[24] = {0};
  const size_t got = std::fread(hdr, 1, sizeof(hdr), f);
  std::fclose(f);
  if (size == 0) return "model file " + q + " is empty";
  if (got < 4 || std::memcmp(hdr, "GGUF", 4) != 0)
    return "model file " + q + " is not a GGUF file (it does not start with the GGUF magic bytes)";
  if (got < sizeof(hdr))
    return "model file " + q + " is truncated: " + std::to_string(size) + " bytes, shorter than a GGUF header";
  const uint32_t version = uint32_t(hdr[4]) | uint32_t(hdr[5]) << 8 | uint32_t(hdr[6]) << 16 | uint32_t(hdr[7]) << 24;
  if (version < 2 || version > 3)
    return "model file " + q + " has GGUF version " + std::to_string(version) + " (supported: 2 and 3)";

  // Full header parse without tensor data (no_alloc): KV pairs and tensor infos, with gguf's own bounds checks.
  clearThreadErrors();
  gguf_init_params gp{/*no_alloc =*/true, /*ctx =*/nullptr};
  gguf_context* g = api::gguf_init_from_file(path.c_str(), gp);
  if (g == nullptr) {
    std::string why = takeThreadErrors();
    return "model file " + q + " is truncated or corrupt: its GGUF header cannot be read" + (why.empty() ? "" : " (" + why + ")");
  }
  const uint64_t dataOffset = api::gguf_get_data_offset(g);
  uint64_t need = dataOffset;
  const int64_t nTensors = api::gguf_get_n_tensors(g);
  for (int64_t i = 0; i < nTensors; i++)
    need = std::max<uint64_t>(need, dataOffset + api::gguf_get_tensor_offset(g, i) + api::gguf_get_tensor_size(g, i));
  api::gguf_free(g);
  if (size < need)
    return "model file " + q + " is truncated: it has " + std::to_string(size) + " bytes but its GGUF header describes " +
           std::to_string(need);
  return "";
}

// ---------------------------------------------------------------------------------------------------------------
// Loading (off the JS thread).

namespace {

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, int32_t gpuLayers, bool vocabOnly, std::vector<std::string> rpcServers)
      : Napi::AsyncWorker(env, "hsd:loadModel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        gpuLayers_(gpuLayers),
        vocabOnly_(vocabOnly),
        rpcServers_(std::move(rpcServers)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::string err = checkGgufFile(path_);
    if (!err.empty()) return SetError(err);
    llama_model_params p = api::llama_model_default_params();
    p.n_gpu_layers = gpuLayers_;
    p.vocab_only = vocabOnly_;
    // gpuLayers 0 means CPU only: hand llama.cpp an empty device list, so no GPU backend is touched at all.
    // With RPC servers, their devices are the only ones the layers go to (NULL-terminated list); what is not
    // offloaded (the input embeddings, layers past gpuLayers) stays on the local CPU.
    std::vector<ggml_backend_dev_t> devices;
    for (const std::string& endpoint : rpcServers_) {
      std::string err = appendRpcDevices(endpoint, devices);
      if (!err.empty()) return SetError(err);
    }
    devices.push_back(nullptr);
    if (gpuLayers_ == 0 || !rpcServers_.empty()) p.devices = devices.data();
    clearThreadErrors();
    llama_model* m = nullptr;
    try {
      m = api::llama_model_load_from_file(path_.c_str(), p);
    } catch (const std::exception& e) {
      m = nullptr;
    }
    if (m == nullptr) {
      std::string why = takeThreadErrors();
      return SetError("llama.cpp could not load model file '" + path_ + "'" + (why.empty() ? "" : ": " + why));
    }
    result_ = std::make_shared<ModelHandle>();
    result_->model = m;
    result_->vocab = api::llama_model_get_vocab(m);
    result_->path = path_;
    result_->vocabOnly = vocabOnly_;
    result_->nVocab = api::llama_vocab_n_tokens(result_->vocab);
  }

  void OnOK() override {
    Napi::Env env = Env();
    std::shared_ptr<ModelHandle> h = result_;
    Napi::Object obj = addonData(env).modelConstructor.New({Napi::External<std::shared_ptr<ModelHandle>>::New(env, &h)});
    deferred_.Resolve(obj);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int32_t gpuLayers_;
  bool vocabOnly_;
  std::vector<std::string> rpcServers_;
  std::shared_ptr<ModelHandle> result_;
};

int32_t intOption(Napi::Object o, const char* key, int32_t def, int32_t min, int32_t max) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return def;
  return static_cast<int32_t>(integerValue(o.Env(), v, key, min, max));
}

}  // namespace

Napi::Value AddonModel::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!backendsLoaded()) throw Napi::Error::New(env, "loadBackends(libDir) must be called before loadModel()");
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadModel(path, options): path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int32_t gpuLayers = 0;
  bool vocabOnly = false;
  std::vector<std::string> rpcServers;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "loadModel(path, options): options must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    gpuLayers = intOption(o, "gpuLayers", 0, -1, 1 << 30);
    Napi::Value v = o.Get("vocabOnly");
    if (!v.IsUndefined() && !v.IsBoolean()) throw Napi::TypeError::New(env, "vocabOnly must be a boolean");
    vocabOnly = v.IsBoolean() && v.As<Napi::Boolean>().Value();
    Napi::Value rpc = o.Get("rpcServers");
    if (!rpc.IsUndefined()) {
      if (!rpc.IsArray()) throw Napi::TypeError::New(env, "rpcServers must be an array of \"host:port\" strings");
      Napi::Array a = rpc.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) {
        if (!a.Get(i).IsString()) throw Napi::TypeError::New(env, "rpcServers must be an array of \"host:port\" strings");
        rpcServers.push_back(a.Get(i).As<Napi::String>().Utf8Value());
      }
    }
  }
  if (!rpcServers.empty() && !rpcBackendLoaded())
    throw Napi::Error::New(env, "rpcServers: this llama.cpp build has no RPC backend (build one with: npm run build:llama -- --rpc)");
  auto* w = new LoadWorker(env, std::move(path), gpuLayers, vocabOnly, std::move(rpcServers));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// ---------------------------------------------------------------------------------------------------------------
// The JS object.

Napi::Function AddonModel::DefineClass(Napi::Env env) {
  return ObjectWrap<AddonModel>::DefineClass(
      env, "NativeModelHandle",
      {
          InstanceMethod("info", &AddonModel::Info),
          InstanceMethod("metadata", &AddonModel::Metadata),
          InstanceMethod("tokenize", &AddonModel::Tokenize),
          InstanceMethod("detokenize", &AddonModel::Detokenize),
          InstanceMethod("tokenPiece", &AddonModel::TokenPiece),
          InstanceMethod("isEndOfGeneration", &AddonModel::IsEndOfGeneration),
          InstanceMethod("createContext", &AddonModel::CreateContext),
          InstanceMethod("dispose", &AddonModel::Dispose),
          InstanceMethod("isDisposed", &AddonModel::IsDisposed),
      });
}

AddonModel::AddonModel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonModel>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "native models are created by loadModel()");
  handle_ = *info[0].As<Napi::External<std::shared_ptr<ModelHandle>>>().Data();
}

AddonModel::~AddonModel() {
  // Garbage-collected without dispose(): contexts hold their own reference, so only let go of ours.
  handle_.reset();
}

ModelHandle& AddonModel::live(Napi::Env env) {
  if (!handle_) throw Napi::Error::New(env, "the model was disposed");
  return *handle_;
}

void AddonModel::dispose(const char* reason) {
  if (!handle_) return;
  // Dispose every context first: each rejects its pending evaluation (if any) and unregisters itself.
  std::vector<AddonContext*> ctxs(handle_->contexts.begin(), handle_->contexts.end());
  for (AddonContext* c : ctxs) c->dispose(reason);
  handle_.reset();  // the llama_model is freed when the last in-flight evaluation lets go
}

Napi::Value AddonModel::Dispose(const Napi::CallbackInfo& info) {
  std::string reason = "the model of this context was disposed";
  if (handle_) reason += " (" + handle_->path + ")";
  dispose(reason.c_str());
  return info.Env().Undefined();
}

Napi::Value AddonModel::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !handle_); }

Napi::Value AddonModel::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  Napi::Object o = Napi::Object::New(env);
  char desc[256] = {0};
  api::llama_model_desc(h.model, desc, sizeof(desc));
  o.Set("path", h.path);
  o.Set("vocabSize", h.nVocab);
  o.Set("trainContextSize", api::llama_model_n_ctx_train(h.model));
  o.Set("parameterCount", static_cast<double>(api::llama_model_n_params(h.model)));
  o.Set("sizeBytes", static_cast<double>(api::llama_model_size(h.model)));
  o.Set("description", std::string(desc));
  o.Set("bosToken", api::llama_vocab_bos(h.vocab));
  o.Set("eosToken", api::llama_vocab_eos(h.vocab));
  o.Set("vocabOnly", h.vocabOnly);
  return o;
}

Napi::Value AddonModel::Metadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  Napi::Object o = Napi::Object::New(env);
  std::vector<char> buf(512);
  auto fetch = [&buf](auto&& get) -> std::string {
    int32_t n = get(buf.data(), buf.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) >= buf.size()) {
      buf.resize(n + 1);
      n = get(buf.data(), buf.size());
      if (n < 0) return "";
    }
    return std::string(buf.data(), n);
  };
  const int32_t count = api::llama_model_meta_count(h.model);
  for (int32_t i = 0; i < count; i++) {
    std::string key = fetch([&](char* b, size_t s) { return api::llama_model_meta_key_by_index(h.model, i, b, s); });
    std::string val = fetch([&](char* b, size_t s) { return api::llama_model_meta_val_str_by_index(h.model, i, b, s); });
    o.Set(key, val);
  }
  return o;
}

namespace {
int32_t tokenArg(const Napi::CallbackInfo& info, size_t i, int32_t nVocab) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "token must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!isIntegerIn(d, 0, static_cast<int64_t>(nVocab) - 1))
    throw Napi::RangeError::New(info.Env(), "token id " + info[i].ToString().Utf8Value() + " is outside the vocabulary [0, " +
                                                std::to_string(nVocab) + ")");
  return static_cast<int32_t>(d);
}
bool boolArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}
}  // namespace

Napi::Value AddonModel::Tokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "tokenize(text, addSpecial, parseSpecial): text must be a string");
  std::string text = info[0].As<Napi::String>().Utf8Value();
  bool addSpecial = boolArg(info, 1, "addSpecial");
  bool parseSpecial = boolArg(info, 2, "parseSpecial");
  std::vector<llama_token> toks(text.size() + 8);
  int32_t n = api::llama_tokenize(h.vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(),
                             static_cast<int32_t>(toks.size()), addSpecial, parseSpecial);
  if (n < 0) {
    toks.resize(-n);
    n = api::llama_tokenize(h.vocab, text.data(), static_cast<int32_t>(text.size()), toks.data(), static_cast<int32_t>(toks.size()),
                       addSpecial, parseSpecial);
  }
  if (n < 0) throw Napi::Error::New(env, "tokenization failed");
  Napi::Int32Array out = Napi::Int32Array::New(env, n);
  std::copy(toks.begin(), toks.begin() + n, out.Data());
  return out;
}

Napi::Value AddonModel::Detokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "detokenize(tokens, removeSpecial, unparseSpecial): tokens must be an Int32Array");
  Napi::Int32Array t = info[0].As<Napi::Int32Array>();
  bool removeSpecial = boolArg(info, 1, "removeSpecial");
  bool unparseSpecial = boolArg(info, 2, "unparseSpecial");
  const int32_t n = static_cast<int32_t>(t.ElementLength());
  for (int32_t i = 0; i < n; i++)
    if (t[i] < 0 || t[i] >= h.nVocab)
      throw Napi::RangeError::New(env, "token id " + std::to_string(t[i]) + " at index " + std::to_string(i) +
                                           " is outside the vocabulary [0, " + std::to_string(h.nVocab) + ")");
  std::vector<char> buf(static_cast<size_t>(n) * 8 + 16);
  int32_t len = api::llama_detokenize(h.vocab, t.Data(), n, buf.data(), static_cast<int32_t>(buf.size()), removeSpecial, unparseSpecial);
  if (len < 0) {
    buf.resize(-len);
    len = api::llama_detokenize(h.vocab, t.Data(), n, buf.data(), static_cast<int32_t>(buf.size()), removeSpecial, unparseSpecial);
  }
  if (len < 0) throw Napi::Error::New(env, "detokenization failed");
  return Napi::String::New(env, buf.data(), len);
}

Napi::Value AddonModel::TokenPiece(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  int32_t tok = tokenArg(info, 0, h.nVocab);
  char buf[256];
  int32_t n = api::llama_token_to_piece(h.vocab, tok, buf, sizeof(buf), 0, /*special =*/true);
  std::vector<char> big;
  const char* p = buf;
  if (n < 0) {
    big.resize(-n);
    n = api::llama_token_to_piece(h.vocab, tok, big.data(), static_cast<int32_t>(big.size()), 0, true);
    p = big.data();
  }
  if (n < 0) throw Napi::Error::New(env, "llama_token_to_piece failed");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, n);
  std::memcpy(out.Data(), p, n);
  return out;
}

Napi::Value AddonModel::IsEndOfGeneration(const Napi::CallbackInfo& info) {
  ModelHandle& h = live(info.Env());
  return Napi::Boolean::New(info.Env(), api::llama_vocab_is_eog(h.vocab, tokenArg(info, 0, h.nVocab)));
}

Napi::Value AddonModel::CreateContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ModelHandle& h = live(env);
  if (h.vocabOnly) throw Napi::Error::New(env, "model '" + h.path + "' was loaded with vocabOnly: it cannot create contexts");
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "createContext(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto required = [&](const char* key, int32_t min, int32_t max) {
    if (o.Get(key).IsUndefined()) throw Napi::TypeError::New(env, std::string("createContext: ") + key + " is required");
    return intOption(o, key, 0, min, max);
  };
  int32_t contextSize = required("contextSize", 1, 1 << 24);
  int32_t batchSize = required("batchSize", 1, 1 << 20);
  int32_t threads = required("threads", 1, 1024);
  if (batchSize > contextSize) throw Napi::RangeError::New(env, "createContext: batchSize must be <= contextSize");
  // -1 auto (llama.cpp decides), 0 off, 1 on: on this project's CPU measurements flash attention made
  // one-token passes cheaper but multi-token (verification) passes dearer, so the choice is the caller's.
  int32_t flashAttention = intOption(o, "flashAttention", -1, -1, 1);
  return AddonContext::Create(env, handle_, contextSize, batchSize, threads, flashAttention);
}

}  // namespace hsd
