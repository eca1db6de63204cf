// NativeContext: one llama_context (its own KV cache, sequence 0) on a model, plus reusable scratch.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "llama_api.h"
#include "model.h"
#include "sampling_transform.h"

namespace hsd {

// Owns the llama_context and the buffers that evaluation reuses. Shared by the JS context object and the
// evaluation in flight; freed (on the JS thread) when the last of them lets go.
struct ContextHandle {
  std::shared_ptr<ModelHandle> model;  // declared first: destroyed after the llama_context below
  llama_context* ctx = nullptr;
  llama_batch batch{};
  bool hasBatch = false;
  int32_t nVocab = 0;
  int32_t contextSize = 0;
  int32_t batchSize = 0;
  std::atomic<int32_t> position{0};  // tokens in the KV cache; written by whoever evaluates
  std::atomic<bool> abort{false};    // set by dispose(): llama_decode stops at the next graph node (CPU)
  std::vector<int32_t> scratch;      // transform ordering scratch, nVocab ints
  ~ContextHandle();
};

// One evaluation: truncate to position, decode tokens, transform rows >= firstOutput into probs/argmax.
struct EvalRequest {
  const int32_t* tokens = nullptr;
  int32_t n = 0;
  int32_t position = 0;
  int32_t firstOutput = 0;
  SamplingTransform transform;
  float* probs = nullptr;  // null in greedy mode
  int32_t* argmax = nullptr;
  int32_t rowOffset = 0;
  int32_t vocabLimit = 0;  // rows cover ids [0, vocabLimit) only (a draft restricted below a smaller verifier's vocabulary)
  // Sparse rows (null when not asked for): row r's entries at [r * sparseCapacity, ...), its count (-1: the row is
  // dense, in probs) at sparseCounts[r].
  int32_t sparseCapacity = 0;
  int32_t* sparseIds = nullptr;
  float* sparseProbs = nullptr;
  int32_t* sparseCounts = nullptr;
};

// Runs on any thread. "" on success, else the reason. On failure the cache is truncated to request.position.
std::string runEvaluate(ContextHandle& h, const EvalRequest& r);

class EvaluateWorker;

class AddonContext : public Napi::ObjectWrap<AddonContext> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  // Creates the llama_context; called by AddonModel::CreateContext.
  static Napi::Value Create(Napi::Env env, const std::shared_ptr<ModelHandle>& model, int32_t contextSize,
                            int32_t batchSize, int32_t threads, int32_t flashAttention);

  explicit AddonContext(const Napi::CallbackInfo& info);
  ~AddonContext() override;

  // Frees the context (deferred while an evaluation runs; that evaluation's promise rejects with `reason`).
  void dispose(const std::string& reason);
  void workerDone() { pending_ = nullptr; }

 private:
  ContextHandle& live(Napi::Env env);
  // Reads and checks (tokens, position, firstOutput, target); fills r. Throws a JS error when invalid.
  void parseRequest(const Napi::CallbackInfo& info, EvalRequest& r, bool needTarget);

  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Position(const Napi::CallbackInfo& info);
  Napi::Value SetSampling(const Napi::CallbackInfo& info);
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value EvaluateSync(const Napi::CallbackInfo& info);
  Napi::Value Truncate(const Napi::CallbackInfo& info);
  Napi::Value TimeDecodeLoop(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);

  std::shared_ptr<ContextHandle> handle_;
  std::shared_ptr<ModelHandle> model_;  // to unregister from the model's context set
  SamplingTransform transform_;
  EvaluateWorker* pending_ = nullptr;  // the evaluation in flight, if any
};

}  // namespace hsd
