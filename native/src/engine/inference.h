// Inference with a key/value cache: the LLaMA forward pass of model.h, restructured so that a
// sequence is processed a piece at a time. Each Session keeps, per layer, the rotated keys and
// the values of every position it has seen; forward() appends n new tokens (n = 1 is decoding,
// n > 1 is prompt prefill) and computes logits only for the rows the caller asks for — the
// output projection (vocab × dim) is the largest matrix of a small model, and scoring needs it
// only on the continuation.
//
// Weights live in one flat fp32 buffer with the same tensor names, shapes and order as
// Model<float> (tok_embeddings.weight, layers.N.attention.wq.weight, ... in Meta's layout,
// rotary pairs interleaved), so a trainer's tensors or a loaded checkpoint drop straight in.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/model.h"

namespace herd {

class Inference;

// One sequence's key/value cache. Positions 0..length−1 are filled.
class Session {
 public:
  Session(const ModelConfig& c, int capacity);
  int length = 0;
  int capacity() const { return capacity_; }
  // Forget positions ≥ n (keep the first n), e.g. to score another continuation of a context.
  void truncate(int n);

 private:
  friend class Inference;
  int capacity_;
  std::vector<std::vector<float>> k_, v_;  // per layer [capacity, kv_dim]
};

// A (context, continuation) pair to score: log P(continuation | context).
struct ScoreRequest {
  std::vector<int32_t> context;       // must not be empty (prepend BOS when there is none)
  std::vector<int32_t> continuation;  // must not be empty
};

struct ScoreResult {
  double logprob = 0;     // Σ log P(continuation token | everything before it)
  bool greedy = false;    // every continuation token was the arg-max
  int tokens = 0;         // continuation tokens scored
  int truncated = 0;      // context tokens dropped on the left to fit max_seq_len
};

struct SampleOptions {
  int max_new_tokens = 64;
  double temperature = 0;  // 0: greedy
  double top_p = 1.0;      // nucleus: smallest set of tokens whose probability reaches top_p
  uint64_t seed = 0;
  std::vector<int32_t> stop;  // stop after emitting any of these
  // Stop once the output ends with one of these token sequences (a stop string's tokens);
  // callers still cut the decoded text at the string, this only saves the tokens after it.
  std::vector<std::vector<int32_t>> stop_sequences;
  int samples = 1;  // outputs drawn after one prefill of the prompt (maj1@k)
};

struct PerplexityResult {
  double nll = 0;   // Σ −log P over scored tokens
  int64_t tokens = 0;  // tokens scored (all but the first)
};

class Inference {
 public:
  Inference(const ModelConfig& config, int threads);

  const ModelConfig& config() const { return config_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  std::vector<float> params;

  // Appends tokens[0..n) to the session at positions length..length+n−1. Writes logits for
  // rows first_logit_row..n−1 to `logits` ([n − first_logit_row, vocab]); first_logit_row = n
  // computes none.
  void forward(Session& s, const int32_t* tokens, int n, int first_logit_row,
               std::vector<float>& logits);

  // Scores each request; a request reuses the cache of the previous one's context as far as
  // the two agree from the start, so a multiple-choice item's context is computed once for all
  // its choices, and questions after the same few-shot prompt share it.
  std::vector<ScoreResult> score(const std::vector<ScoreRequest>& requests);

  // Rolling-window perplexity: windows of `window` tokens advancing by `stride` (≤ window);
  // each window scores only the tokens no earlier window scored, with the rest as context.
  PerplexityResult perplexity(const std::vector<int32_t>& tokens, int window, int stride);

  // Appends the prompt, then samples up to max_new_tokens; returns the new tokens.
  std::vector<int32_t> generate(const std::vector<int32_t>& prompt, const SampleOptions& o);

  // o.samples outputs of the prompt, which is computed once: each sample decodes from the
  // prompt's cache (truncated back to it) and its last logits. The random stream runs on
  // from one sample to the next, so the whole set depends on the seed alone.
  std::vector<std::vector<int32_t>> generate_samples(const std::vector<int32_t>& prompt,
                                                     const SampleOptions& o);

  // Logits of every position of `tokens`, fed through the cache `chunk` tokens at a time
  // (chunk 1: one token per call; chunk ≥ n: one prefill). For tests.
  std::vector<float> logits_by_chunks(const std::vector<int32_t>& tokens, int chunk);

 private:
  using Layer = ParamLayout::Layer;
  void check_tokens(const int32_t* tokens, size_t n) const;
  const float* p(size_t offset) const { return params.data() + offset; }
  void use_threads() const;

  ModelConfig config_;
  int threads_;
  std::vector<TensorInfo> tensors_;
  std::vector<Layer> layers_;
  size_t tok_embeddings_ = 0, norm_ = 0, output_ = 0;
  std::vector<float> rope_cos_, rope_sin_;
  // scratch, [n, ·]
  std::vector<float> x_, xn_, q_, k_, v_, att_, h_, a_, b_, rstd_;
};

// Sampling from one row of logits (exposed for tests): greedy when temperature is 0.
int32_t sample_token(const float* logits, int vocab, double temperature, double top_p,
                     uint64_t& rng_state);

}  // namespace herd
