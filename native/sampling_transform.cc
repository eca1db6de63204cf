#include "sampling_transform.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace hsd {

std::string validateTransform(const SamplingTransform& t) {
  if (t.greedy) return "";
  if (!(t.temperature > 0.0f) || !std::isfinite(t.temperature)) return "temperature must be a finite number > 0";
  if (t.topK < 0) return "topK must be an integer >= 0";
  if (!(t.topP > 0.0f && t.topP <= 1.0f)) return "topP must be in (0, 1]";
  if (!(t.minP >= 0.0f && t.minP < 1.0f)) return "minP must be in [0, 1)";
  return "";
}

int32_t argmaxRow(const float* x, int32_t n) {
  int32_t best = 0;
  float bv = x[0];
  for (int32_t i = 1; i < n; i++)
    if (x[i] > bv) {  // strict: the first of equal maxima wins
      bv = x[i];
      best = i;
    }
  return best;
}

void transformRow(const float* logits, int32_t n, const SamplingTransform& t, float* out, int32_t* argmax,
                  std::vector<int32_t>& scratch) {
  const int32_t am = argmaxRow(logits, n);
  *argmax = am;
  if (t.greedy || out == nullptr) return;

  // 3. softmax(logits / T); subtracting the max keeps exp() in range.
  const float invT = 1.0f / t.temperature;
  const float maxLogit = logits[am];
  double sum = 0.0;  // double: vocabularies of 150k+ small terms
  for (int32_t i = 0; i < n; i++) {
    float e = std::exp((logits[i] - maxLogit) * invT);
    out[i] = e;
    sum += e;
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int32_t i = 0; i < n; i++) out[i] *= inv;

  const bool useTopK = t.topK > 0 && t.topK < n;
  const bool useTopP = t.topP < 1.0f;
  const bool useMinP = t.minP > 0.0f;
  if (!useTopK && !useTopP && !useMinP) return;

  const float minPThreshold = t.minP * out[am];  // out[am] is the largest probability (T > 0 keeps the order)
  if (!useTopK && !useTopP) {
    // 6 alone: one pass, no ordering needed ({p >= threshold} is a prefix of the order).
    double kept = 0.0;
    for (int32_t i = 0; i < n; i++) {
      if (out[i] >= minPThreshold) kept += out[i];
      else out[i] = 0.0f;
    }
    const float r = static_cast<float>(1.0 / kept);
    for (int32_t i = 0; i < n; i++) out[i] *= r;
    return;
  }

  // Ordering helpers over token ids.
  if (scratch.size() != static_cast<size_t>(n)) scratch.resize(n);
  int32_t* idx = scratch.data();
  std::iota(idx, idx + n, 0);
  auto before = [out](int32_t a, int32_t b) { return out[a] > out[b] || (out[a] == out[b] && a < b); };

  // 4. top-k: the first `end` ids hold the k best (unordered).
  int32_t end = n;
  double massK = 1.0;
  if (useTopK) {
    end = t.topK;
    std::nth_element(idx, idx + end - 1, idx + n, before);
    massK = 0.0;
    for (int32_t i = 0; i < end; i++) massK += out[idx[i]];
  }

  // 6. min-p bounds how far the prefix can go; counting is one pass.
  int32_t keep = end;
  if (useMinP) {
    int32_t cnt = 0;
    for (int32_t i = 0; i < end; i++) cnt += out[idx[i]] >= minPThreshold;
    keep = std::min(keep, std::max(cnt, 1));
  }

  // 5. top-p over the top-k survivors: grow a sorted prefix [0, sorted) until the mass is reached or `keep` is.
  if (useTopP) {
    const double target = t.topP * massK;
    int32_t sorted = 0, chunk = 64;
    double cum = 0.0;
    int32_t stop = -1;
    while (stop < 0 && sorted < keep) {
      int32_t upto = std::min(keep, sorted + chunk);
      if (upto < end) std::nth_element(idx + sorted, idx + upto - 1, idx + end, before);
      std::sort(idx + sorted, idx + upto, before);
      for (int32_t i = sorted; i < upto; i++) {
        cum += out[idx[i]];
        if (cum >= target) {
          stop = i + 1;
          break;
        }
      }
      sorted = upto;
      chunk *= 4;
    }
    if (stop > 0) keep = std::min(keep, stop);
  } else if (keep < end) {
    std::nth_element(idx, idx + keep - 1, idx + end, before);
  }

  // 7. The kept set is every token at or before the keep-th one in the order. For top-p the sorted prefix gives
  // it directly; for top-k/min-p nth_element put the keep-th at idx[keep-1].
  const int32_t pivot = idx[keep - 1];
  double kept = 0.0;
  for (int32_t i = 0; i < n; i++) {
    if (i == pivot || before(i, pivot)) kept += out[i];
    else out[i] = 0.0f;
  }
  const float r = static_cast<float>(1.0 / kept);
  for (int32_t i = 0; i < n; i++) out[i] *= r;
}

}  // namespace hsd
