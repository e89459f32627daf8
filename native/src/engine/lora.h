// LoRA (Hu et al. 2021): a target weight matrix W0[out, in] stays frozen and training learns a
// low-rank update instead,
//   W = W0 + s · B·A,   A[r, in], B[out, r], s = alpha / r,
// with A drawn like PyTorch's Linear (uniform in ±1/√in, as PEFT does) and B = 0, so training
// starts from the pretrained model exactly.
//
// herd merges the update into the model's weights (merge) and projects the weights' gradient
// onto the adapters after backward (project_grads):
//   dA = s · Bᵀ·dW,   dB = s · dW·Aᵀ,   dW = ∂loss/∂W,
// which is the gradient of y = W0·x + s·B·(A·x). So the one forward and backward the engine
// has, on the CPU or a GPU, trains LoRA unchanged; the cost is three rank-r products per target
// per step (O(r·out·in), under 1 % of a step's matrix products for r ≪ B·T) and the frozen
// weights' gradients, which full fine-tuning computes anyway. What LoRA saves here is AdamW's
// state (two moments of the adapters instead of the model) and the all-reduce, which carries
// the adapters' gradients only. See docs/fine-tuning.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"

namespace herd {

struct LoraConfig {
  int rank = 0;                      // r; 0: no LoRA (every weight trains)
  double alpha = 16;                 // s = alpha / r
  std::vector<std::string> targets;  // matrices of every block: wq wk wv wo w1 w2 w3
};

// The adapters of every targeted matrix, and the frozen weights they adapt.
class Lora {
 public:
  // Throws std::invalid_argument naming a bad rank or an unknown target.
  Lora(const LoraConfig& config, const std::vector<TensorInfo>& model_tensors);

  // A ~ U(−1/√in, 1/√in) from the seed, B = 0.
  void init_adapters(uint64_t seed);
  // Keeps the targets' current weights as the frozen W0 (the pretrained ones, before step 1).
  void take_base(const float* model_params);
  // The targets' weights become W0 + s·B·A.
  void merge(float* model_params) const;
  // The adapters' gradients from the model's (overwritten, not accumulated).
  void project_grads(const float* model_grads);

  // A and B of each target, in the adapters' buffers (params, grads); names as the target's
  // with lora_A / lora_B for weight ("layers.0.attention.wq.lora_A.weight").
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The frozen W0 of each target in `base`, named as in the model.
  const std::vector<TensorInfo>& base_tensors() const { return base_tensors_; }
  // The model's elements that the adapters change, as (offset, size) ranges.
  std::vector<std::pair<size_t, size_t>> target_ranges() const;

  std::vector<float> params, grads, base;
  bool has_base = false;  // base holds W0 (taken, or read from a checkpoint)

 private:
  struct Target {
    size_t model_offset;  // W in the model's buffers
    int out, in;
    size_t a, b, base;    // A and B in params/grads, W0 in base
  };
  std::vector<Target> targets_;
  std::vector<TensorInfo> tensors_, base_tensors_;
  float scale_ = 0;
};

}  // namespace herd
