// AdamW (Loshchilov & Hutter 2019) with the LLaMA paper's settings, global-norm gradient
// clipping, and the cosine learning-rate schedule with linear warm-up.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/model.h"

namespace herd {

struct OptimizerConfig {
  double peak_lr = 3e-4;
  double min_lr_ratio = 0.1;  // the cosine ends at peak_lr · min_lr_ratio
  int64_t warmup_steps = 2000;
  int64_t total_steps = 1;    // where the cosine reaches its end
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;  // decoupled; on matrices only (TensorInfo::decay)
  double grad_clip = 1.0;     // global L2 norm; 0 disables
};

// Learning rate of the step with 0-based index `step`: linear warm-up from peak/warmup to the
// peak over warmup_steps, then a half cosine from the peak down to peak · min_lr_ratio at
// total_steps, constant after that.
double learning_rate(const OptimizerConfig& c, int64_t step);

// √(Σ g²) over all gradients, summed in double over a fixed partition (independent of the
// thread count) and combined in order.
double grad_norm(const std::vector<float>& grads);
double grad_norm(const float* grads, size_t n);
void scale(std::vector<float>& grads, float factor);
void scale(float* grads, size_t n, float factor);

class AdamW {
 public:
  explicit AdamW(size_t n) : m(n, 0.0f), v(n, 0.0f) {}

  // One update with PyTorch's AdamW arithmetic: p ← p·(1 − lr·wd) for decayed tensors, then
  // p ← p − lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + ε), with t = step_count (1-based, after this).
  void update(Model<float>& model, const OptimizerConfig& c, double lr) {
    update(model.params.data(), model.grads.data(), model.tensors(), c, lr);
  }
  // The same over any parameters laid out as `tensors` (LoRA's adapters).
  void update(float* params, const float* grads, const std::vector<TensorInfo>& tensors,
              const OptimizerConfig& c, double lr);

  std::vector<float> m, v;  // first and second moments, laid out like the parameters
  int64_t step_count = 0;
};

}  // namespace herd
