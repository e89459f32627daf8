#include "engine/lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/ops.h"
#include "engine/rng.h"

namespace herd {

namespace {

const char* const kTargets[] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

// "layers.3.attention.wq.weight" → "wq"; "" for tensors that are not a block's matrix.
std::string matrix_of(const std::string& name) {
  if (name.rfind("layers.", 0) != 0 || name.size() < 10) return "";
  const size_t end = name.size() - 7;  // before ".weight"
  if (name.compare(end, 7, ".weight") != 0) return "";
  const size_t dot = name.rfind('.', end - 1);
  return name.substr(dot + 1, end - dot - 1);
}

}  // namespace

Lora::Lora(const LoraConfig& config, const std::vector<TensorInfo>& model_tensors) {
  if (config.rank <= 0) throw std::invalid_argument("lora: rank must be positive");
  if (!(config.alpha > 0)) throw std::invalid_argument("lora: alpha must be positive");
  if (config.targets.empty()) throw std::invalid_argument("lora: no target matrices");
  for (const std::string& t : config.targets)
    if (std::find(std::begin(kTargets), std::end(kTargets), t) == std::end(kTargets))
      throw std::invalid_argument("lora: target '" + t + "' is not a block matrix (wq wk wv wo w1 w2 w3)");
  scale_ = float(config.alpha / config.rank);
  const int64_t r = config.rank;
  size_t at = 0, base_at = 0;
  for (const TensorInfo& t : model_tensors) {
    const std::string m = matrix_of(t.name);
    if (std::find(config.targets.begin(), config.targets.end(), m) == config.targets.end()) continue;
    const int64_t out = t.shape[0], in = t.shape[1];
    if (r > std::min(out, in))
      throw std::invalid_argument("lora: rank " + std::to_string(r) + " exceeds " + t.name +
                                  "'s smaller side " + std::to_string(std::min(out, in)));
    const std::string stem = t.name.substr(0, t.name.size() - 7);  // without ".weight"
    Target target{t.offset, int(out), int(in), at, at + size_t(r * in), base_at};
    tensors_.push_back({stem + ".lora_A.weight", {r, in}, target.a, size_t(r * in), true});
    tensors_.push_back({stem + ".lora_B.weight", {out, r}, target.b, size_t(out * r), true});
    base_tensors_.push_back({t.name, t.shape, base_at, t.size, false});
    at = target.b + size_t(out * r);
    base_at += t.size;
    targets_.push_back(target);
  }
  params.assign(at, 0.0f);
  grads.assign(at, 0.0f);
  base.assign(base_at, 0.0f);
}

void Lora::init_adapters(uint64_t seed) {
  Rng rng(seed ^ 0x4C6F5241ull);  // "LoRA": a stream apart from the model's initial weights
  for (const Target& t : targets_) {
    const double bound = 1.0 / std::sqrt(double(t.in));
    const size_t rank = (t.b - t.a) / size_t(t.in);
    for (size_t i = 0; i < rank * size_t(t.in); i++)
      params[t.a + i] = float((2.0 * rng.uniform() - 1.0) * bound);
    std::fill(params.begin() + t.b, params.begin() + t.b + size_t(t.out) * rank, 0.0f);
  }
}

void Lora::take_base(const float* model_params) {
  for (const Target& t : targets_)
    std::memcpy(base.data() + t.base, model_params + t.model_offset,
                size_t(t.out) * t.in * sizeof(float));
  has_base = true;
}

void Lora::merge(float* model_params) const {
  for (const Target& t : targets_) {
    const int r = int((t.b - t.a) / size_t(t.in));
    float* w = model_params + t.model_offset;
    std::memcpy(w, base.data() + t.base, size_t(t.out) * t.in * sizeof(float));
    // W[out,in] += s · B[out,r] · A[r,in]
    ops::gemm(false, false, t.out, t.in, r, scale_, params.data() + t.b, r, params.data() + t.a,
              t.in, 1.0f, w, t.in);
  }
}

void Lora::project_grads(const float* model_grads) {
  for (const Target& t : targets_) {
    const int r = int((t.b - t.a) / size_t(t.in));
    const float* dw = model_grads + t.model_offset;
    // dA[r,in] = s · B[out,r]ᵀ · dW[out,in]
    ops::gemm(true, false, r, t.in, t.out, scale_, params.data() + t.b, r, dw, t.in, 0.0f,
              grads.data() + t.a, t.in);
    // dB[out,r] = s · dW[out,in] · A[r,in]ᵀ
    ops::gemm(false, true, t.out, r, t.in, scale_, dw, t.in, params.data() + t.a, t.in, 0.0f,
              grads.data() + t.b, r);
  }
}

std::vector<std::pair<size_t, size_t>> Lora::target_ranges() const {
  std::vector<std::pair<size_t, size_t>> ranges;
  for (const Target& t : targets_) ranges.emplace_back(t.model_offset, size_t(t.out) * t.in);
  return ranges;
}

}  // namespace herd
