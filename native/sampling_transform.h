// Logits -> sampling distribution, the same transform at every level of the hierarchy (the target's settings).
//
// Order (documented contract, mirrored in src/native/types.ts):
//   1. argmax of the RAW logits (ties -> lowest token id); always produced.
//   2. greedy: stop here (no distribution).
//   3. temperature: logits / T, then softmax over the whole vocabulary.
//   4. top-k (k > 0): keep the k most probable tokens.
//   5. top-p (< 1): among the survivors, renormalised, keep the smallest most-probable prefix whose mass >= topP
//      (at least one token).
//   6. min-p (> 0): drop survivors whose probability is below minP * (largest probability).
//   7. renormalise the survivors; every dropped token gets exactly 0.
// "Most probable" orders tokens by (probability desc, token id asc), so ties at a cut are broken the same way on
// every run and every model. Steps 4-6 each keep a prefix of that one order, so the result is the shortest of the
// three prefixes; only the part that is needed gets sorted (nth_element + growing sorted prefix), never the whole
// vocabulary when top-k or min-p bounds it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hsd {

struct SamplingTransform {
  bool greedy = true;
  float temperature = 1.0f;
  int32_t topK = 0;
  float topP = 1.0f;
  float minP = 0.0f;
};

// "" when valid, else a message naming the bad field.
std::string validateTransform(const SamplingTransform& t);

// Lowest index of the largest value.
int32_t argmaxRow(const float* logits, int32_t n);

// Writes *argmax; when !t.greedy and out != nullptr also writes the distribution (n floats) into out.
// scratch is resized once to n and reused (no allocation per call after the first).
void transformRow(const float* logits, int32_t n, const SamplingTransform& t, float* out, int32_t* argmax,
                  std::vector<int32_t>& scratch);

// The same distribution as sparse entries (docs/ALGORITHM.md §12): writes *argmax and, unless greedy, the
// non-zero entries (ids[i], probs[i]) when there are at most `capacity` of them and returns how many; otherwise
// writes the dense row into `dense` and returns -1 (dense must then be non-null). With 0 < topK <= capacity
// (and topK < n) it never touches n floats: the k best logits are selected in one pass (a bounded heap) and the
// transform runs on them alone, since top-k's renormalisation cancels the softmax's normaliser and top-p / min-p
// only compare the survivors' probabilities with each other. Otherwise the dense transform runs and its
// non-zero entries are gathered when they fit.
int32_t transformRowSparse(const float* logits, int32_t n, const SamplingTransform& t, int32_t capacity,
                           int32_t* ids, float* probs, float* dense, int32_t* argmax, std::vector<int32_t>& scratch);

}  // namespace hsd
