#include "engine/inference.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "engine/ops.h"
#include "engine/rng.h"

extern "C" void openblas_set_num_threads(int);

namespace herd {

Session::Session(const ModelConfig& c, int capacity) : capacity_(0) {
  k_.resize(c.n_layers);
  v_.resize(c.n_layers);
  (void)capacity;
}

void Session::truncate(int n) {
  if (n < 0 || n > length) throw std::invalid_argument("session: cannot truncate to " + std::to_string(n));
  length = n;
}

// The parameters laid out as in training (ParamLayout, model.cc).
Inference::Inference(const ModelConfig& config, int threads) : config_(config), threads_(threads) {
  config_.validate();
  if (threads_ <= 0) throw std::invalid_argument("inference: threads must be positive");
  const ParamLayout layout(config_);
  tensors_ = layout.tensors;
  layers_ = layout.layers;
  tok_embeddings_ = layout.tok_embeddings;
  norm_ = layout.norm;
  output_ = layout.output;
  params.assign(layout.size(), 0.0f);
  ops::rope_tables(rope_cos_, rope_sin_, config_.max_seq_len, config_.head_dim(),
                   config_.rope_theta);
}

void Inference::use_threads() const {
  // Thread counts are per OS thread in OpenMP: set them on the (worker) thread that computes.
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
}

void Inference::check_tokens(const int32_t* tokens, size_t n) const {
  for (size_t i = 0; i < n; i++)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      throw std::invalid_argument("inference: token id " + std::to_string(tokens[i]) +
                                  " out of range [0, " + std::to_string(config_.vocab_size) + ")");
}

// out[n, OC] = in[n, C] · W[OC, C]ᵀ; one row (decoding) is a matrix-vector product, which
// OpenBLAS does faster through gemv than through a 1-row gemm.
static void linear(float* out, const float* in, const float* w, int n, int C, int OC) {
  if (n == 1)
    cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, in, 1, 0.0f, out, 1);
  else
    ops::linear_forward(out, in, w, n, C, OC);
}

// Rotates the head vectors of rows[0..n) that sit at positions start..start+n−1 (Meta's
// interleaved pairs, as ops::rope_apply).
static void rope_at(float* x, const float* cos_t, const float* sin_t, int n, int start,
                    int n_heads, int hd) {
  const int half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < n; r++) {
    const float* c = cos_t + size_t(start + r) * half;
    const float* s = sin_t + size_t(start + r) * half;
    for (int h = 0; h < n_heads; h++) {
      float* v = x + (size_t(r) * n_heads + h) * hd;
      for (int i = 0; i < half; i++) {
        const float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c[i] - x1 * s[i];
        v[2 * i + 1] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

void Inference::forward(Session& s, const int32_t* tokens, int n, int first_logit_row,
                        std::vector<float>& logits) {
  const ModelConfig& c = config_;
  if (n <= 0) throw std::invalid_argument("inference: forward needs at least one token");
  const int start = s.length, end = start + n;
  if (end > c.max_seq_len)
    throw std::invalid_argument("inference: sequence of " + std::to_string(end) +
                                " tokens exceeds maxSeqLen " + std::to_string(c.max_seq_len));
  check_tokens(tokens, size_t(n));
  const int d = c.dim, kvd = c.kv_dim(), hid = c.ffn_hidden, V = c.vocab_size, H = c.n_heads,
            hd = c.head_dim(), group = c.n_heads / c.n_kv_heads;
  const float eps = float(c.norm_eps), scale = 1.0f / std::sqrt(float(hd));
  // grow the cache geometrically
  if (end > s.capacity_) {
    int cap = std::min(c.max_seq_len, std::max(end, 2 * s.capacity_));
    for (int l = 0; l < c.n_layers; l++) {
      s.k_[l].resize(size_t(cap) * kvd);
      s.v_[l].resize(size_t(cap) * kvd);
    }
    s.capacity_ = cap;
  }
  const size_t N = size_t(n);
  x_.resize(N * d), xn_.resize(N * d), q_.resize(N * d), att_.resize(N * d), h_.resize(N * d);
  a_.resize(N * hid), b_.resize(N * hid), rstd_.resize(N);

  ops::embedding_forward(x_.data(), tokens, p(tok_embeddings_), n, d);
  for (int l = 0; l < c.n_layers; l++) {
    const Layer& L = layers_[l];
    float* kc = s.k_[l].data();
    float* vc = s.v_[l].data();
    // attention block: new keys and values go straight into the cache at their positions
    ops::rmsnorm_forward(xn_.data(), rstd_.data(), x_.data(), p(L.attn_norm), n, d, eps);
    linear(q_.data(), xn_.data(), p(L.wq), n, d, d);
    linear(kc + size_t(start) * kvd, xn_.data(), p(L.wk), n, d, kvd);
    linear(vc + size_t(start) * kvd, xn_.data(), p(L.wv), n, d, kvd);
    rope_at(q_.data(), rope_cos_.data(), rope_sin_.data(), n, start, H, hd);
    rope_at(kc + size_t(start) * kvd, rope_cos_.data(), rope_sin_.data(), n, start, c.n_kv_heads, hd);
    // causal attention of row r (position start+r) over cached positions 0..start+r
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int r = 0; r < n; r++)
      for (int h = 0; h < H; h++) {
        const int pos = start + r, kvh = h / group;
        const float* qr = q_.data() + size_t(r) * d + size_t(h) * hd;
        std::vector<float> score(size_t(pos) + 1);
        float m = -INFINITY;
        for (int j = 0; j <= pos; j++) {
          score[j] = ops::dot(qr, kc + size_t(j) * kvd + size_t(kvh) * hd, hd) * scale;
          m = std::max(m, score[j]);
        }
        float sum = 0;
        for (int j = 0; j <= pos; j++) sum += (score[j] = std::exp(score[j] - m));
        float* out = att_.data() + size_t(r) * d + size_t(h) * hd;
        std::fill(out, out + hd, 0.0f);
        for (int j = 0; j <= pos; j++) {
          const float w = score[j] / sum;
          const float* vj = vc + size_t(j) * kvd + size_t(kvh) * hd;
          for (int i = 0; i < hd; i++) out[i] += w * vj[i];
        }
      }
    linear(h_.data(), att_.data(), p(L.wo), n, d, d);
    for (size_t i = 0; i < N * d; i++) h_[i] += x_[i];
    // feed-forward block
    ops::rmsnorm_forward(xn_.data(), rstd_.data(), h_.data(), p(L.ffn_norm), n, d, eps);
    linear(a_.data(), xn_.data(), p(L.w1), n, d, hid);
    linear(b_.data(), xn_.data(), p(L.w3), n, d, hid);
    ops::swiglu_forward(a_.data(), a_.data(), b_.data(), N * hid);
    linear(x_.data(), a_.data(), p(L.w2), n, hid, d);
    for (size_t i = 0; i < N * d; i++) x_[i] += h_[i];
  }
  s.length = end;
  const int rows = n - std::clamp(first_logit_row, 0, n);
  logits.resize(size_t(rows) * V);
  if (rows == 0) return;
  const size_t from = size_t(n - rows) * d;
  ops::rmsnorm_forward(xn_.data(), rstd_.data(), x_.data() + from, p(norm_), rows, d, eps);
  linear(logits.data(), xn_.data(), p(output_), rows, d, V);
}

// log softmax(z)[target] and whether target is the arg-max.
static double log_prob(const float* z, int V, int32_t target, bool& is_max) {
  const float m = *std::max_element(z, z + V);
  double sum = 0;
  for (int i = 0; i < V; i++) sum += std::exp(double(z[i]) - m);
  is_max = z[target] >= m;
  return double(z[target]) - m - std::log(sum);
}

std::vector<ScoreResult> Inference::score(const std::vector<ScoreRequest>& requests) {
  use_threads();
  const int max_len = config_.max_seq_len, V = config_.vocab_size;
  std::vector<ScoreResult> results(requests.size());
  Session s(config_, 0);
  std::vector<int32_t> cached;  // the context prefix (all but its last token) in `s`
  std::vector<float> logits;
  for (size_t i = 0; i < requests.size(); i++) {
    const auto& r = requests[i];
    if (r.context.empty() || r.continuation.empty())
      throw std::invalid_argument("score: request " + std::to_string(i) +
                                  " has an empty context or continuation");
    const int m = int(r.continuation.size());
    if (m + 1 > max_len)
      throw std::invalid_argument("score: continuation of request " + std::to_string(i) +
                                  " is longer than maxSeqLen");
    // keep the context's last max_len − m tokens so the whole fits the model
    const int keep = std::min(int(r.context.size()), max_len - m);
    ScoreResult& out = results[i];
    out.truncated = int(r.context.size()) - keep;
    std::vector<int32_t> prefix(r.context.end() - keep, r.context.end() - 1);
    // The cache keeps what this context shares with the previous one from the start (all of
    // it for another choice of the same question; the preamble and few-shot examples for the
    // next question of an MMLU subject): only the rest is computed.
    const size_t shared = size_t(
        std::mismatch(prefix.begin(), prefix.end(), cached.begin(), cached.end()).first - prefix.begin());
    s.truncate(int(shared));
    if (shared < prefix.size())
      forward(s, prefix.data() + shared, int(prefix.size() - shared), int(prefix.size() - shared), logits);
    cached = prefix;
    // [last context token, continuation[0..m−2]] predicts continuation[0..m−1]
    std::vector<int32_t> feed;
    feed.push_back(r.context.back());
    feed.insert(feed.end(), r.continuation.begin(), r.continuation.end() - 1);
    check_tokens(r.continuation.data(), r.continuation.size());
    forward(s, feed.data(), m, 0, logits);
    out.greedy = true;
    out.tokens = m;
    for (int t = 0; t < m; t++) {
      bool is_max = false;
      out.logprob += log_prob(logits.data() + size_t(t) * V, V, r.continuation[t], is_max);
      out.greedy = out.greedy && is_max;
    }
  }
  return results;
}

PerplexityResult Inference::perplexity(const std::vector<int32_t>& tokens, int window, int stride) {
  use_threads();
  if (window < 2 || window > config_.max_seq_len)
    throw std::invalid_argument("perplexity: window must be in [2, maxSeqLen]");
  if (stride < 1 || stride > window)
    throw std::invalid_argument("perplexity: stride must be in [1, window]");
  check_tokens(tokens.data(), tokens.size());
  const int64_t T = int64_t(tokens.size());
  const int V = config_.vocab_size;
  PerplexityResult res;
  std::vector<float> logits;
  int64_t start = 0, done = 1;  // tokens[0] has nothing to condition on
  while (done < T) {
    const int64_t end = std::min(start + window, T);
    Session s(config_, 0);
    // rows r = 0..end−start−2 predict tokens[start+r+1]; score those not scored yet
    const int n = int(end - start - 1), first = int(done - 1 - start);
    forward(s, tokens.data() + start, n, first, logits);
    for (int r = first; r < n; r++) {
      bool is_max = false;
      res.nll -= log_prob(logits.data() + size_t(r - first) * V, V, tokens[start + r + 1], is_max);
      res.tokens++;
    }
    done = end;
    // the next window starts `stride` later, but always with at least one token of context
    start = std::min(start + stride, done - 1);
  }
  return res;
}

int32_t sample_token(const float* z, int V, double temperature, double top_p,
                     uint64_t& rng_state) {
  if (temperature <= 0) return int32_t(std::max_element(z, z + V) - z);
  const float m = *std::max_element(z, z + V);
  std::vector<double> prob(V);
  double sum = 0;
  for (int i = 0; i < V; i++) sum += (prob[i] = std::exp((double(z[i]) - m) / temperature));
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  // nucleus: the most probable tokens until their mass reaches top_p (ties by id, for determinism)
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); });
  int keep = V;
  if (top_p < 1.0) {
    double mass = 0;
    for (int i = 0; i < V; i++) {
      mass += prob[order[i]] / sum;
      if (mass >= top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (int i = 0; i < keep; i++) kept += prob[order[i]];
  Rng rng(rng_state);
  const double u = rng.uniform() * kept;
  rng_state = rng.state;
  double acc = 0;
  for (int i = 0; i < keep; i++) {
    acc += prob[order[i]];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

// Whether `out` now ends with the stop token or one of the stop sequences.
static bool stops(const std::vector<int32_t>& out, const SampleOptions& o) {
  if (std::find(o.stop.begin(), o.stop.end(), out.back()) != o.stop.end()) return true;
  for (const auto& seq : o.stop_sequences)
    if (!seq.empty() && seq.size() <= out.size() &&
        std::equal(seq.begin(), seq.end(), out.end() - std::ptrdiff_t(seq.size())))
      return true;
  return false;
}

std::vector<int32_t> Inference::generate(const std::vector<int32_t>& prompt, const SampleOptions& o) {
  SampleOptions one = o;
  one.samples = 1;
  return generate_samples(prompt, one)[0];
}

std::vector<std::vector<int32_t>> Inference::generate_samples(const std::vector<int32_t>& prompt,
                                                              const SampleOptions& o) {
  use_threads();
  if (prompt.empty()) throw std::invalid_argument("generate: the prompt is empty");
  if (o.temperature < 0 || o.top_p <= 0 || o.top_p > 1)
    throw std::invalid_argument("generate: temperature must be ≥ 0 and topP in (0, 1]");
  if (o.samples < 1) throw std::invalid_argument("generate: samples must be at least 1");
  Session s(config_, 0);
  std::vector<float> prompt_logits, logits;
  forward(s, prompt.data(), int(prompt.size()), int(prompt.size()) - 1, prompt_logits);
  const int prompt_length = s.length;
  std::vector<std::vector<int32_t>> outputs;
  uint64_t rng_state = o.seed;
  for (int k = 0; k < o.samples; k++) {
    s.truncate(prompt_length);
    logits = prompt_logits;
    std::vector<int32_t> out;
    for (int i = 0; i < o.max_new_tokens; i++) {
      const int32_t next = sample_token(logits.data(), config_.vocab_size, o.temperature, o.top_p, rng_state);
      out.push_back(next);
      if (stops(out, o)) break;
      if (s.length >= config_.max_seq_len || i + 1 == o.max_new_tokens) break;
      forward(s, &next, 1, 0, logits);
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

std::vector<float> Inference::logits_by_chunks(const std::vector<int32_t>& tokens, int chunk) {
  use_threads();
  if (chunk <= 0) throw std::invalid_argument("logits: chunk must be positive");
  Session s(config_, 0);
  std::vector<float> all, part;
  for (size_t i = 0; i < tokens.size(); i += size_t(chunk)) {
    const int n = int(std::min(tokens.size() - i, size_t(chunk)));
    forward(s, tokens.data() + i, n, 0, part);
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

}  // namespace herd
