#include "context.h"

#include <chrono>
#include <cmath>

#include "addon.h"
#include "args.h"
#include "logging.h"

namespace hsd {

ContextHandle::~ContextHandle() {
  if (hasBatch) api::llama_batch_free(batch);
  if (ctx != nullptr) api::llama_free(ctx);
}

// ---------------------------------------------------------------------------------------------------------------
// The evaluation itself (any thread).

// Drops the KV cache from position p on. Appending (p == h.position) skips llama_memory_seq_rm, which scans every
// cell of the cache even when there is nothing to remove. Returns an error message, empty on success.
std::string truncateTo(ContextHandle& h, int32_t p) {
  if (p >= h.position) return "";
  if (!api::llama_memory_seq_rm(api::llama_get_memory(h.ctx), 0, p, -1))
    return "cannot truncate the KV cache to " + std::to_string(p) + " (llama_memory_seq_rm refused: this model's memory cannot roll back)";
  h.position = p;
  return "";
}

std::string runEvaluate(ContextHandle& h, const EvalRequest& r) {
  if (std::string why = truncateTo(h, r.position); !why.empty()) return why;
  h.position = r.position;

  llama_batch& b = h.batch;
  b.n_tokens = r.n;
  for (int32_t i = 0; i < r.n; i++) {
    b.token[i] = r.tokens[i];
    b.pos[i] = r.position + i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = i >= r.firstOutput;  // only the rows the caller asked for
  }
  clearThreadErrors();
  const int32_t rc = api::llama_decode(h.ctx, b);
  if (rc != 0) {
    std::string why = takeThreadErrors();
    api::llama_memory_seq_rm(api::llama_get_memory(h.ctx), 0, r.position, -1);
    if (rc == 2 && h.abort) return "aborted";
    return "llama_decode failed with code " + std::to_string(rc) + (why.empty() ? "" : ": " + why);
  }
  h.position = r.position + r.n;

  const int32_t rows = r.n - r.firstOutput;
  const size_t V = static_cast<size_t>(r.vocabLimit);
  for (int32_t j = 0; j < rows; j++) {
    const float* logits = api::llama_get_logits_ith(h.ctx, r.firstOutput + j);
    if (logits == nullptr) return "llama.cpp returned no logits for batch row " + std::to_string(r.firstOutput + j);
    const size_t row = static_cast<size_t>(r.rowOffset + j);
    float* dense = r.probs ? r.probs + row * V : nullptr;
    if (r.sparseIds == nullptr) {
      transformRow(logits, r.vocabLimit, r.transform, dense, r.argmax + row, h.scratch);
      continue;
    }
    const size_t at = row * static_cast<size_t>(r.sparseCapacity);
    r.sparseCounts[row] = transformRowSparse(logits, r.vocabLimit, r.transform, r.sparseCapacity, r.sparseIds + at,
                                             r.sparseProbs + at, dense, r.argmax + row, h.scratch);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------------------------
// Async evaluation: one per context at a time. The worker keeps the context, its model and the caller's typed
// arrays alive until it has finished; dispose() meanwhile only marks it cancelled (its promise then rejects).

class EvaluateWorker : public Napi::AsyncWorker {
 public:
  EvaluateWorker(Napi::Env env, AddonContext* owner, Napi::Object ownerObj, std::shared_ptr<ContextHandle> h,
                 const EvalRequest& r, const Napi::CallbackInfo& info)
      : Napi::AsyncWorker(env, "hsd:evaluate"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        handle_(std::move(h)),
        request_(r) {
    ownerRef_ = Napi::Persistent(ownerObj);
    tokensRef_ = Napi::Persistent(info[0].As<Napi::Object>());
    targetRef_ = Napi::Persistent(info[3].As<Napi::Object>());  // holds probs and argmax
    Napi::Object target = info[3].As<Napi::Object>();
    probsRef_ = Napi::Persistent(target.Get("probs").IsObject() ? target.Get("probs").As<Napi::Object>() : Napi::Object::New(env));
    argmaxRef_ = Napi::Persistent(target.Get("argmax").As<Napi::Object>());
    sparseRef_ = Napi::Persistent(target.Get("sparse").IsObject() ? target.Get("sparse").As<Napi::Object>() : Napi::Object::New(env));
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void cancel(const std::string& reason) {
    cancelReason_ = reason;
    handle_->abort = true;
  }

  void Execute() override {
    if (handle_->abort) return SetError("aborted");
    std::string err = runEvaluate(*handle_, request_);
    if (!err.empty()) SetError(err);
  }

  void OnOK() override { finish(nullptr); }
  void OnError(const Napi::Error& e) override { finish(&e); }

 private:
  void finish(const Napi::Error* e) {
    Napi::Env env = Env();
    owner_->workerDone();
    if (!cancelReason_.empty()) deferred_.Reject(Napi::Error::New(env, cancelReason_).Value());
    else if (e != nullptr) deferred_.Reject(e->Value());
    else deferred_.Resolve(env.Undefined());
  }

  Napi::Promise::Deferred deferred_;
  AddonContext* owner_;
  Napi::ObjectReference ownerRef_, tokensRef_, targetRef_, probsRef_, argmaxRef_, sparseRef_;
  std::shared_ptr<ContextHandle> handle_;
  EvalRequest request_;
  std::string cancelReason_;
};

// ---------------------------------------------------------------------------------------------------------------

namespace {

bool abortCallback(void* data) { return static_cast<std::atomic<bool>*>(data)->load(std::memory_order_relaxed); }

int32_t intArg(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min, int64_t max) {
  return static_cast<int32_t>(integerValue(info.Env(), info.Length() > i ? info[i] : info.Env().Undefined(), name, min, max));
}

template <typename T>
bool isTyped(Napi::Value v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

}  // namespace

Napi::Function AddonContext::DefineClass(Napi::Env env) {
  return ObjectWrap<AddonContext>::DefineClass(
      env, "NativeContextHandle",
      {
          InstanceMethod("info", &AddonContext::Info),
          InstanceMethod("position", &AddonContext::Position),
          InstanceMethod("setSampling", &AddonContext::SetSampling),
          InstanceMethod("evaluate", &AddonContext::Evaluate),
          InstanceMethod("evaluateSync", &AddonContext::EvaluateSync),
          InstanceMethod("truncate", &AddonContext::Truncate),
          InstanceMethod("timeDecodeLoop", &AddonContext::TimeDecodeLoop),
          InstanceMethod("dispose", &AddonContext::Dispose),
          InstanceMethod("isDisposed", &AddonContext::IsDisposed),
      });
}

Napi::Value AddonContext::Create(Napi::Env env, const std::shared_ptr<ModelHandle>& model, int32_t contextSize,
                                 int32_t batchSize, int32_t threads, int32_t flashAttention) {
  auto h = std::make_shared<ContextHandle>();
  h->model = model;
  h->nVocab = model->nVocab;

  llama_context_params cp = api::llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(contextSize);
  cp.n_batch = static_cast<uint32_t>(batchSize);
  cp.n_ubatch = static_cast<uint32_t>(batchSize);  // one evaluate() = one physical batch = one graph
  cp.n_seq_max = 1;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.no_perf = true;
  cp.flash_attn_type = static_cast<llama_flash_attn_type>(flashAttention);
  cp.abort_callback = abortCallback;
  cp.abort_callback_data = &h->abort;
  clearThreadErrors();
  h->ctx = api::llama_init_from_model(model->model, cp);
  if (h->ctx == nullptr) {
    std::string why = takeThreadErrors();
    throw Napi::Error::New(env, "llama.cpp could not create a context for '" + model->path + "' (contextSize " +
                                    std::to_string(contextSize) + ", batchSize " + std::to_string(batchSize) + ")" +
                                    (why.empty() ? "" : ": " + why));
  }
  h->contextSize = static_cast<int32_t>(api::llama_n_ctx(h->ctx));
  h->batchSize = batchSize;
  h->batch = api::llama_batch_init(batchSize, 0, 1);
  h->hasBatch = true;
  h->scratch.resize(h->nVocab);

  return addonData(env).contextConstructor.New({Napi::External<std::shared_ptr<ContextHandle>>::New(env, &h)});
}

AddonContext::AddonContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonContext>(info) {
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(info.Env(), "native contexts are created by model.createContext()");
  handle_ = *info[0].As<Napi::External<std::shared_ptr<ContextHandle>>>().Data();
  model_ = handle_->model;
  model_->contexts.insert(this);
}

AddonContext::~AddonContext() {
  // Garbage-collected: a pending worker holds a reference to this object, so none is in flight here.
  if (model_) model_->contexts.erase(this);
}

ContextHandle& AddonContext::live(Napi::Env env) {
  if (!handle_) throw Napi::Error::New(env, "the context was disposed");
  return *handle_;
}

void AddonContext::dispose(const std::string& reason) {
  if (!handle_) return;
  if (pending_ != nullptr) pending_->cancel(reason);  // its promise rejects; it frees the context when done
  handle_.reset();
  if (model_) model_->contexts.erase(this);
  model_.reset();
}

Napi::Value AddonContext::Dispose(const Napi::CallbackInfo& info) {
  dispose("the context was disposed while evaluate() was pending");
  return info.Env().Undefined();
}

Napi::Value AddonContext::IsDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !handle_); }

Napi::Value AddonContext::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ContextHandle& h = live(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("contextSize", h.contextSize);
  o.Set("batchSize", h.batchSize);
  o.Set("vocabSize", h.nVocab);
  return o;
}

Napi::Value AddonContext::Position(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), live(info.Env()).position.load());
}

Napi::Value AddonContext::SetSampling(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  live(env);
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "setSampling(transform): transform must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto num = [&](const char* key) {
    Napi::Value v = o.Get(key);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("setSampling: ") + key + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  };
  Napi::Value g = o.Get("greedy");
  if (!g.IsBoolean()) throw Napi::TypeError::New(env, "setSampling: greedy must be a boolean");
  SamplingTransform t;
  t.greedy = g.As<Napi::Boolean>().Value();
  t.temperature = static_cast<float>(num("temperature"));
  t.topK = static_cast<int32_t>(integerValue(env, o.Get("topK"), "setSampling: topK", 0, INT32_MAX));
  t.topP = static_cast<float>(num("topP"));
  t.minP = static_cast<float>(num("minP"));
  std::string err = validateTransform(t);
  if (!err.empty()) throw Napi::RangeError::New(env, "setSampling: " + err);
  transform_ = t;  // an evaluation in flight keeps the copy it started with
  return env.Undefined();
}

void AddonContext::parseRequest(const Napi::CallbackInfo& info, EvalRequest& r, bool needTarget) {
  Napi::Env env = info.Env();
  ContextHandle& h = live(env);
  if (pending_ != nullptr) throw Napi::Error::New(env, "an evaluate() is already in flight on this context: await it first (one evaluation per context at a time)");
  if (info.Length() < 1 || !isTyped<int32_t>(info[0], napi_int32_array)) throw Napi::TypeError::New(env, "tokens must be an Int32Array");
  Napi::Int32Array tokens = info[0].As<Napi::Int32Array>();
  const int64_t n = static_cast<int64_t>(tokens.ElementLength());
  if (n < 1 || n > h.batchSize)
    throw Napi::RangeError::New(env, "tokens.length must be in [1, batchSize = " + std::to_string(h.batchSize) + "], got " + std::to_string(n));
  const int32_t position = intArg(info, 1, "position", 0, h.position.load());
  if (position + n > h.contextSize)
    throw Napi::RangeError::New(env, "position + tokens.length = " + std::to_string(position + n) + " exceeds contextSize " +
                                         std::to_string(h.contextSize));
  const int32_t firstOutput = intArg(info, 2, "firstOutput", 0, n);
  const int32_t* tokData = tokens.Data();
  for (int64_t i = 0; i < n; i++)
    if (tokData[i] < 0 || tokData[i] >= h.nVocab)
      throw Napi::RangeError::New(env, "token id " + std::to_string(tokData[i]) + " at index " + std::to_string(i) +
                                           " is outside the vocabulary [0, " + std::to_string(h.nVocab) + ")");
  r.tokens = tokens.Data();
  r.n = static_cast<int32_t>(n);
  r.position = position;
  r.firstOutput = firstOutput;
  r.transform = transform_;
  r.vocabLimit = h.nVocab;
  if (!needTarget) return;

  if (info.Length() < 4 || !info[3].IsObject()) throw Napi::TypeError::New(env, "target must be an object { probs, argmax, rowOffset }");
  Napi::Object target = info[3].As<Napi::Object>();
  const int64_t rowOffset = integerValue(env, target.Get("rowOffset"), "target.rowOffset", 0, INT32_MAX);
  const int64_t rows = n - firstOutput;
  const int64_t needRows = static_cast<int64_t>(rowOffset) + rows;
  Napi::Value am = target.Get("argmax");
  if (!isTyped<int32_t>(am, napi_int32_array)) throw Napi::TypeError::New(env, "target.argmax must be an Int32Array");
  Napi::Int32Array argmax = am.As<Napi::Int32Array>();
  if (static_cast<int64_t>(argmax.ElementLength()) < needRows)
    throw Napi::RangeError::New(env, "target.argmax holds " + std::to_string(argmax.ElementLength()) + " rows, needs rowOffset + rows = " +
                                         std::to_string(needRows));
  r.argmax = argmax.Data();
  r.rowOffset = static_cast<int32_t>(rowOffset);
  Napi::Value vl = target.Get("vocabLimit");  // optional: rows over ids [0, vocabLimit) only
  if (!vl.IsUndefined()) r.vocabLimit = static_cast<int32_t>(integerValue(env, vl, "target.vocabLimit", 1, h.nVocab));
  Napi::Value sv = target.Get("sparse");  // optional: { capacity, ids, probs, counts }, docs/ALGORITHM.md §12
  if (!sv.IsUndefined() && !sv.IsNull() && !transform_.greedy) {
    if (!sv.IsObject()) throw Napi::TypeError::New(env, "target.sparse must be an object { capacity, ids, probs, counts }");
    Napi::Object sparse = sv.As<Napi::Object>();
    const int64_t capacity = integerValue(env, sparse.Get("capacity"), "target.sparse.capacity", 1, r.vocabLimit);
    const int64_t entries = needRows * capacity;
    Napi::Value ids = sparse.Get("ids"), sp = sparse.Get("probs"), counts = sparse.Get("counts");
    if (!isTyped<int32_t>(ids, napi_int32_array) || !isTyped<float>(sp, napi_float32_array) || !isTyped<int32_t>(counts, napi_int32_array))
      throw Napi::TypeError::New(env, "target.sparse needs ids (Int32Array), probs (Float32Array) and counts (Int32Array)");
    if (static_cast<int64_t>(ids.As<Napi::Int32Array>().ElementLength()) < entries ||
        static_cast<int64_t>(sp.As<Napi::Float32Array>().ElementLength()) < entries ||
        static_cast<int64_t>(counts.As<Napi::Int32Array>().ElementLength()) < needRows)
      throw Napi::RangeError::New(env, "target.sparse holds fewer than (rowOffset + rows) * capacity entries = " + std::to_string(entries) +
                                           " or (rowOffset + rows) counts");
    r.sparseCapacity = static_cast<int32_t>(capacity);
    r.sparseIds = ids.As<Napi::Int32Array>().Data();
    r.sparseProbs = sp.As<Napi::Float32Array>().Data();
    r.sparseCounts = counts.As<Napi::Int32Array>().Data();
  }
  // Every row is sparse when top-k keeps at most `capacity` entries; otherwise a row may need the dense buffer.
  const bool alwaysSparse = r.sparseIds != nullptr && transform_.topK > 0 && transform_.topK < r.vocabLimit &&
                            transform_.topK <= r.sparseCapacity;
  r.probs = nullptr;
  Napi::Value pv = target.Get("probs");
  if (!transform_.greedy && !(alwaysSparse && (pv.IsNull() || pv.IsUndefined()))) {
    if (!isTyped<float>(pv, napi_float32_array))
      throw Napi::TypeError::New(env, "target.probs must be a Float32Array (sampling is not greedy and rows may be dense)");
    Napi::Float32Array probs = pv.As<Napi::Float32Array>();
    const int64_t need = needRows * static_cast<int64_t>(r.vocabLimit);
    if (static_cast<int64_t>(probs.ElementLength()) < need)
      throw Napi::RangeError::New(env, "target.probs holds " + std::to_string(probs.ElementLength()) + " floats, needs (rowOffset + rows) * vocabLimit = " +
                                           std::to_string(need));
    r.probs = probs.Data();
  } else if (!pv.IsNull() && !pv.IsUndefined() && !isTyped<float>(pv, napi_float32_array)) {
    throw Napi::TypeError::New(env, "target.probs must be null or a Float32Array");
  }
}

Napi::Value AddonContext::EvaluateSync(const Napi::CallbackInfo& info) {
  EvalRequest r;
  parseRequest(info, r, true);
  std::string err = runEvaluate(*handle_, r);
  if (!err.empty()) throw Napi::Error::New(info.Env(), err);
  return info.Env().Undefined();
}

Napi::Value AddonContext::Evaluate(const Napi::CallbackInfo& info) {
  EvalRequest r;
  parseRequest(info, r, true);
  auto* w = new EvaluateWorker(info.Env(), this, info.This().As<Napi::Object>(), handle_, r, info);
  pending_ = w;
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value AddonContext::Truncate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ContextHandle& h = live(env);
  if (pending_ != nullptr) throw Napi::Error::New(env, "cannot truncate while an evaluate() is in flight on this context");
  const int32_t p = intArg(info, 0, "position", 0, INT32_MAX);
  if (std::string why = truncateTo(h, p); !why.empty()) throw Napi::Error::New(env, why);
  return env.Undefined();
}

// timeDecodeLoop(tokens, position, firstOutput, repetitions) -> Float64Array of milliseconds.
// The same truncate + llama_decode + transform as evaluateSync, timed inside C++: the baseline that measures
// what the N-API layer adds. Output goes to buffers allocated once, before the loop.
Napi::Value AddonContext::TimeDecodeLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EvalRequest r;
  parseRequest(info, r, false);
  const int32_t reps = intArg(info, 3, "repetitions", 1, 1 << 24);
  const int32_t rows = r.n - r.firstOutput;
  std::vector<float> probs(r.transform.greedy ? 0 : static_cast<size_t>(rows) * handle_->nVocab);
  std::vector<int32_t> argmax(rows + 1);
  r.probs = r.transform.greedy ? nullptr : probs.data();
  r.argmax = argmax.data();
  r.rowOffset = 0;
  Napi::Float64Array out = Napi::Float64Array::New(env, reps);
  for (int32_t i = 0; i < reps; i++) {
    auto t0 = std::chrono::steady_clock::now();
    std::string err = runEvaluate(*handle_, r);
    auto t1 = std::chrono::steady_clock::now();
    if (!err.empty()) throw Napi::Error::New(env, err);
    out[i] = std::chrono::duration<double, std::milli>(t1 - t0).count();
  }
  return out;
}

}  // namespace hsd
