#include "engine/optimizer.h"

#include <algorithm>
#include <cmath>

namespace herd {

double learning_rate(const OptimizerConfig& c, int64_t step) {
  const double min_lr = c.peak_lr * c.min_lr_ratio;
  if (step < c.warmup_steps) return c.peak_lr * double(step + 1) / double(c.warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(1, c.total_steps - c.warmup_steps);
  const double progress = std::min(1.0, double(step - c.warmup_steps) / double(decay_steps));
  return min_lr + 0.5 * (c.peak_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

double grad_norm(const std::vector<float>& grads) { return grad_norm(grads.data(), grads.size()); }

double grad_norm(const float* grads, size_t n) {
  constexpr int kChunks = 256;
  const size_t per = (n + kChunks - 1) / kChunks;
  double partial[kChunks];
#pragma omp parallel for schedule(static)
  for (int c = 0; c < kChunks; c++) {
    double s = 0;
    const size_t lo = std::min(n, c * per), hi = std::min(n, lo + per);
    for (size_t i = lo; i < hi; i++) s += double(grads[i]) * double(grads[i]);
    partial[c] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

void scale(std::vector<float>& grads, float factor) { scale(grads.data(), grads.size(), factor); }

void scale(float* grads, size_t n, float factor) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) grads[i] *= factor;
}

void AdamW::update(float* p, const float* g, const std::vector<TensorInfo>& tensors,
                   const OptimizerConfig& c, double lr) {
  step_count++;
  const float beta1 = float(c.beta1), beta2 = float(c.beta2), eps = float(c.eps);
  const double bias1 = 1.0 - std::pow(c.beta1, double(step_count));
  const double bias2 = 1.0 - std::pow(c.beta2, double(step_count));
  const float step_size = float(lr / bias1);
  const float bias2_sqrt = float(std::sqrt(bias2));
  const float decay = float(1.0 - lr * c.weight_decay);
  for (const TensorInfo& t : tensors) {
    const bool decayed = t.decay && c.weight_decay != 0.0;
#pragma omp parallel for schedule(static)
    for (size_t i = t.offset; i < t.offset + t.size; i++) {
      if (decayed) p[i] *= decay;
      m[i] += (1.0f - beta1) * (g[i] - m[i]);
      v[i] = v[i] * beta2 + (1.0f - beta2) * g[i] * g[i];
      const float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
      p[i] -= step_size * (m[i] / denom);
    }
  }
}

}  // namespace herd
