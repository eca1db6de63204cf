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

namespace {

// Min-p without top-k, sparse (-1 when the survivors do not fit in `capacity`): p >= minP * pmax is
// logit >= maxLogit + T * ln(minP), so the survivors are found by comparing logits, without an exp per id. Top-p,
// if on, measures mass over the whole vocabulary: one exp pass for the normaliser, still without writes.
int32_t minPSparse(const float* logits, int32_t n, const SamplingTransform& t, int32_t capacity, int32_t* ids,
                   float* probs, int32_t* argmax, std::vector<int32_t>& scratch) {
  const int32_t am = argmaxRow(logits, n);
  *argmax = am;
  const float maxLogit = logits[am];
  const float invT = 1.0f / t.temperature;
  // A hair below the exact bound, so that no survivor is lost to rounding; the exact test follows on the few.
  const float bound = maxLogit + t.temperature * std::log(t.minP) - 1e-4f * (1.0f + std::fabs(maxLogit));
  if (scratch.size() < static_cast<size_t>(capacity)) scratch.resize(capacity);
  int32_t* kept = scratch.data();
  int32_t count = 0;
  for (int32_t i = 0; i < n; i++) {
    if (logits[i] < bound) continue;
    if (count == capacity) return -1;
    kept[count++] = i;
  }
  // The dense transform's test: exp((l - max) / T) >= minP * 1 (the largest unnormalised probability is 1).
  int32_t m = 0;
  for (int32_t i = 0; i < count; i++) {
    const float e = std::exp((logits[kept[i]] - maxLogit) * invT);
    if (e >= t.minP) {
      kept[m] = kept[i];
      probs[m++] = e;
    }
  }
  count = m;
  if (t.topP < 1.0f) {
    double total = 0.0;
    for (int32_t i = 0; i < n; i++) total += std::exp((logits[i] - maxLogit) * invT);
    // Order the survivors by (probability desc, id asc) and cut at the top-p prefix.
    std::vector<std::pair<float, int32_t>> order(count);
    for (int32_t i = 0; i < count; i++) order[i] = {probs[i], kept[i]};
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    double cum = 0.0;
    int32_t keep = count;
    for (int32_t i = 0; i < count; i++) {
      cum += order[i].first;
      if (cum >= t.topP * total) {
        keep = i + 1;
        break;
      }
    }
    count = keep;
    for (int32_t i = 0; i < count; i++) {
      probs[i] = order[i].first;
      kept[i] = order[i].second;
    }
  }
  double sum = 0.0;
  for (int32_t i = 0; i < count; i++) sum += probs[i];
  const float r = static_cast<float>(1.0 / sum);
  for (int32_t i = 0; i < count; i++) {
    ids[i] = kept[i];
    probs[i] *= r;
  }
  return count;
}

}  // namespace

int32_t transformRowSparse(const float* logits, int32_t n, const SamplingTransform& t, int32_t capacity,
                           int32_t* ids, float* probs, float* dense, int32_t* argmax, std::vector<int32_t>& scratch) {
  const bool useTopK = t.topK > 0 && t.topK < n;
  if (!t.greedy && !useTopK && t.minP > 0.0f) {
    const int32_t count = minPSparse(logits, n, t, capacity, ids, probs, argmax, scratch);
    if (count >= 0) return count;
  }
  if (t.greedy || !useTopK || t.topK > capacity) {
    // The dense transform, then its non-zero entries when they fit.
    transformRow(logits, n, t, dense, argmax, scratch);
    if (t.greedy || dense == nullptr) return 0;
    int32_t count = 0;
    for (int32_t i = 0; i < n; i++) count += dense[i] > 0.0f;
    if (count > capacity) return -1;
    count = 0;
    for (int32_t i = 0; i < n; i++)
      if (dense[i] > 0.0f) {
        ids[count] = i;
        probs[count++] = dense[i];
      }
    return count;
  }

  // Top-k by (logit desc, id asc) in one pass: a heap of the k best so far, the worst on top. Ids arrive in
  // ascending order, so a later id enters only with a strictly larger logit (equal logits: the lower id wins).
  const int32_t k = t.topK;
  if (scratch.size() < static_cast<size_t>(k)) scratch.resize(k);
  int32_t* heap = scratch.data();
  auto worse = [logits](int32_t a, int32_t b) { return logits[a] < logits[b] || (logits[a] == logits[b] && a > b); };
  // std heaps keep the "largest" by the comparator on top; with comp(a, b) = "a is better than b" the worst is on top.
  auto better = [&worse](int32_t a, int32_t b) { return worse(b, a); };
  for (int32_t i = 0; i < k; i++) heap[i] = i;
  std::make_heap(heap, heap + k, better);
  for (int32_t i = k; i < n; i++) {
    if (logits[i] > logits[heap[0]]) {
      std::pop_heap(heap, heap + k, better);
      heap[k - 1] = i;
      std::push_heap(heap, heap + k, better);
    }
  }
  std::sort(heap, heap + k, better);  // best first
  *argmax = heap[0];

  // 3-4. softmax(logits / T) renormalised over the k survivors = softmax of their logits alone.
  const float invT = 1.0f / t.temperature;
  const float maxLogit = logits[heap[0]];
  double sum = 0.0;
  for (int32_t i = 0; i < k; i++) {
    float e = std::exp((logits[heap[i]] - maxLogit) * invT);
    probs[i] = e;
    sum += e;
  }
  // 6. min-p: the survivors at or above minP * (largest probability), a prefix of the order.
  int32_t keep = k;
  if (t.minP > 0.0f) {
    const float threshold = t.minP * probs[0];
    int32_t cnt = 0;
    while (cnt < k && probs[cnt] >= threshold) cnt++;
    keep = std::max(cnt, 1);
  }
  // 5. top-p over the top-k survivors: the shortest prefix whose mass reaches topP of theirs.
  if (t.topP < 1.0f) {
    const double target = t.topP * sum;
    double cum = 0.0;
    for (int32_t i = 0; i < keep; i++) {
      cum += probs[i];
      if (cum >= target) {
        keep = i + 1;
        break;
      }
    }
  }
  // 7. renormalise the kept prefix.
  double kept = 0.0;
  for (int32_t i = 0; i < keep; i++) kept += probs[i];
  const float r = static_cast<float>(1.0 / kept);
  for (int32_t i = 0; i < keep; i++) {
    ids[i] = heap[i];
    probs[i] *= r;
  }
  return keep;
}

}  // namespace hsd
