// The shape of a LLaMA model, fully resolved (presets and defaults are resolved in TypeScript,
// crds/presets.ts and native/engine.ts, before a model is created).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace herd {

struct ModelConfig {
  int dim = 0;          // model width d
  int n_layers = 0;     // transformer blocks
  int n_heads = 0;      // query heads; head dim = dim / n_heads
  int n_kv_heads = 0;   // key/value heads (grouped-query attention); divides n_heads
  int ffn_hidden = 0;   // SwiGLU hidden size (2/3·4d rounded up to a multiple)
  int vocab_size = 0;
  int max_seq_len = 0;  // longest sequence the rotary tables cover
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tied_embeddings = false;  // output projection shares the token embedding

  int head_dim() const { return dim / n_heads; }
  int kv_dim() const { return n_kv_heads * head_dim(); }

  // Throws std::invalid_argument naming the first field that cannot work.
  void validate() const {
    auto need = [](bool ok, const std::string& what) {
      if (!ok) throw std::invalid_argument("model config: " + what);
    };
    need(dim > 0 && n_layers > 0 && n_heads > 0 && n_kv_heads > 0 && ffn_hidden > 0 &&
             vocab_size > 0 && max_seq_len > 0,
         "dim, nLayers, nHeads, nKvHeads, ffnHidden, vocabSize and maxSeqLen must be positive");
    need(dim % n_heads == 0, "dim " + std::to_string(dim) + " is not divisible by nHeads " +
                                 std::to_string(n_heads));
    need(head_dim() % 2 == 0, "head dim (dim / nHeads) must be even for rotary embeddings");
    need(n_heads % n_kv_heads == 0, "nHeads " + std::to_string(n_heads) +
                                        " is not divisible by nKvHeads " +
                                        std::to_string(n_kv_heads));
    need(norm_eps > 0 && rope_theta > 0, "normEps and ropeTheta must be positive");
  }
};

}  // namespace herd
