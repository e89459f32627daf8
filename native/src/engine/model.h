// The LLaMA model (Touvron et al. 2023): token embedding, n_layers pre-norm blocks of
//   h = x + Attention(RMSNorm(x)),  x' = h + SwiGLU-FFN(RMSNorm(h)),
// a final RMSNorm and the output projection (tied to the embedding or not). Parameters and
// their gradients each live in one flat buffer; `tensors` names the pieces with the Meta
// checkpoint names (tok_embeddings.weight, layers.0.attention.wq.weight, ...).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/config.h"

namespace herd {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // into the flat parameter buffer, in elements
  size_t size = 0;    // elements
  bool decay = false; // weight decay applies (matrices), not to RMSNorm gains
};

// Where every parameter lives in the flat buffer, with its Meta checkpoint name and shape:
// the one layout that training (Model) and inference (Inference) both use, so a checkpoint
// written by one always loads into the other.
struct ParamLayout {
  struct Layer {  // offsets of one block's tensors
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
  };
  explicit ParamLayout(const ModelConfig& config);
  size_t size() const { return tensors.back().offset + tensors.back().size; }  // elements

  std::vector<TensorInfo> tensors;
  std::vector<Layer> layers;
  size_t tok_embeddings = 0, norm = 0, output = 0;
};

template <class T>
class Model {
 public:
  explicit Model(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  size_t num_parameters() const { return params.size(); }

  // Initial weights from a seed: matrices ~ N(0, 0.02²), the residual outputs (wo, w2) scaled
  // by 1/√(2·n_layers) as in GPT-2, RMSNorm gains 1.
  void init_weights(uint64_t seed);

  // Forward pass over tokens[B·T]. With targets, also the per-token cross-entropy; returns
  // their mean over the learned targets (0 without targets or with none learned). A target
  // of kIgnoreTarget (−1) is not learned. `positions` (optional, [B·T]) packs several
  // examples into a row: each token's position in its example, 0 where an example starts;
  // attention stays inside each example. Without it, row positions are 0..T−1. Keeps what
  // backward needs.
  double forward(const int32_t* tokens, const int32_t* targets, int B, int seq,
                 const int32_t* positions = nullptr);

  // Learned targets of the last forward (those ≥ 0).
  size_t learned_targets() const { return learned_; }

  // Backward pass of dloss · Σ loss[n] for the last forward (which must have had targets);
  // gradients accumulate into `grads`. Overwrites the logits.
  void backward(T dloss);

  void zero_grad();

  // Only these tensors (by their offset) get gradients from backward; the others are frozen
  // and their gradients stay 0, which saves their weight-gradient products (LoRA trains
  // adapters from its targets' gradients alone). Empty: every tensor trains (the default).
  void train_only(std::vector<size_t> offsets) { trained_ = std::move(offsets); }

  const T* logits() const { return act_.logits.data(); }  // [B·T, vocab] after forward
  const T* losses() const { return act_.losses.data(); }  // [B·T]

  std::vector<T> params;
  std::vector<T> grads;

 private:
  using Layer = ParamLayout::Layer;
  struct LayerActs {
    std::vector<T> x, xn1, rstd1, q, k, v, att, lse, h, xn2, rstd2, a, b, g;
  };
  struct Acts {
    int B = 0, seq = 0;
    std::vector<int32_t> tokens, targets, positions;  // positions empty: 0..T−1 per row
    std::vector<LayerActs> layers;
    std::vector<T> x_final, xf, rstdf, logits, losses;
    // gradient scratch
    std::vector<T> dx, dh, dxn, datt, dq, dk, dv, da, db, dg;
  };

  void ensure_activations(int B, int seq);
  T* param(size_t offset) { return params.data() + offset; }
  // A tensor's gradient, or null when it is frozen (train_only).
  T* grad(size_t offset) {
    if (!trained_.empty() && std::find(trained_.begin(), trained_.end(), offset) == trained_.end())
      return nullptr;
    return grads.data() + offset;
  }
  std::vector<size_t> trained_;

  ModelConfig config_;
  std::vector<TensorInfo> tensors_;
  std::vector<Layer> layers_;
  size_t tok_embeddings_ = 0, norm_ = 0, output_ = 0;
  std::vector<T> rope_cos_, rope_sin_;
  Acts act_;
  size_t learned_ = 0;
  const int32_t* positions() const { return act_.positions.empty() ? nullptr : act_.positions.data(); }
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace herd
