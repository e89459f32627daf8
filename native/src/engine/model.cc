#include "engine/model.h"

#include <algorithm>
#include <cmath>

#include "engine/ops.h"
#include "engine/rng.h"

namespace herd {

ParamLayout::ParamLayout(const ModelConfig& config) {
  const int64_t d = config.dim, kvd = config.kv_dim(), hid = config.ffn_hidden,
                V = config.vocab_size;
  auto add = [this](const std::string& name, std::vector<int64_t> shape, bool decay) {
    size_t size = 1;
    for (auto s : shape) size *= size_t(s);
    size_t offset = tensors.empty() ? 0 : tensors.back().offset + tensors.back().size;
    tensors.push_back({name, std::move(shape), offset, size, decay});
    return offset;
  };
  tok_embeddings = add("tok_embeddings.weight", {V, d}, true);
  for (int l = 0; l < config.n_layers; l++) {
    const std::string pre = "layers." + std::to_string(l) + ".";
    Layer L;
    L.wq = add(pre + "attention.wq.weight", {d, d}, true);
    L.wk = add(pre + "attention.wk.weight", {kvd, d}, true);
    L.wv = add(pre + "attention.wv.weight", {kvd, d}, true);
    L.wo = add(pre + "attention.wo.weight", {d, d}, true);
    L.w1 = add(pre + "feed_forward.w1.weight", {hid, d}, true);
    L.w2 = add(pre + "feed_forward.w2.weight", {d, hid}, true);
    L.w3 = add(pre + "feed_forward.w3.weight", {hid, d}, true);
    L.attn_norm = add(pre + "attention_norm.weight", {d}, false);
    L.ffn_norm = add(pre + "ffn_norm.weight", {d}, false);
    layers.push_back(L);
  }
  norm = add("norm.weight", {d}, false);
  output = config.tied_embeddings ? tok_embeddings : add("output.weight", {V, d}, true);
}

template <class T>
Model<T>::Model(const ModelConfig& config) : config_(config) {
  config_.validate();
  const ParamLayout layout(config_);
  tensors_ = layout.tensors;
  layers_ = layout.layers;
  tok_embeddings_ = layout.tok_embeddings;
  norm_ = layout.norm;
  output_ = layout.output;
  params.assign(layout.size(), T(0));
  grads.assign(params.size(), T(0));
  ops::rope_tables(rope_cos_, rope_sin_, config_.max_seq_len, config_.head_dim(),
                   config_.rope_theta);
}

template <class T>
void Model<T>::init_weights(uint64_t seed) {
  Rng rng(seed);
  const double std = 0.02, residual_std = 0.02 / std::sqrt(2.0 * config_.n_layers);
  for (const auto& t : tensors_) {
    const bool gain = t.shape.size() == 1;
    const bool residual_out = t.name.find("attention.wo") != std::string::npos ||
                              t.name.find("feed_forward.w2") != std::string::npos;
    T* w = params.data() + t.offset;
    for (size_t i = 0; i < t.size; i++)
      w[i] = gain ? T(1) : T(rng.normal() * (residual_out ? residual_std : std));
  }
}

template <class T>
void Model<T>::zero_grad() {
  std::fill(grads.begin(), grads.end(), T(0));
}

template <class T>
void Model<T>::ensure_activations(int B, int T_) {
  if (act_.B == B && act_.seq == T_) return;
  const size_t N = size_t(B) * T_, d = config_.dim, kvd = config_.kv_dim(),
               hid = config_.ffn_hidden, V = config_.vocab_size, H = config_.n_heads;
  act_ = Acts();
  act_.B = B;
  act_.seq = T_;
  act_.layers.resize(config_.n_layers);
  for (auto& A : act_.layers) {
    A.x.resize(N * d), A.xn1.resize(N * d), A.rstd1.resize(N);
    A.q.resize(N * d), A.k.resize(N * kvd), A.v.resize(N * kvd);
    A.att.resize(N * d), A.lse.resize(N * H);
    A.h.resize(N * d), A.xn2.resize(N * d), A.rstd2.resize(N);
    A.a.resize(N * hid), A.b.resize(N * hid), A.g.resize(N * hid);
  }
  act_.x_final.resize(N * d), act_.xf.resize(N * d), act_.rstdf.resize(N);
  act_.logits.resize(N * V), act_.losses.resize(N);
  act_.dx.resize(N * d), act_.dh.resize(N * d), act_.dxn.resize(N * d), act_.datt.resize(N * d);
  act_.dq.resize(N * d), act_.dk.resize(N * kvd), act_.dv.resize(N * kvd);
  act_.da.resize(N * hid), act_.db.resize(N * hid), act_.dg.resize(N * hid);
}

template <class T>
double Model<T>::forward(const int32_t* tokens, const int32_t* targets, int B, int T_,
                         const int32_t* positions) {
  const ModelConfig& c = config_;
  if (B <= 0 || T_ <= 0) throw std::invalid_argument("forward: batch and sequence length must be positive");
  if (T_ > c.max_seq_len)
    throw std::invalid_argument("forward: sequence length " + std::to_string(T_) +
                                " exceeds maxSeqLen " + std::to_string(c.max_seq_len));
  const int N = B * T_, d = c.dim, kvd = c.kv_dim(), hid = c.ffn_hidden, V = c.vocab_size;
  for (int n = 0; n < N; n++) {
    if (tokens[n] < 0 || tokens[n] >= V ||
        (targets && (targets[n] < ops::kIgnoreTarget || targets[n] >= V)))
      throw std::invalid_argument("forward: token id out of range [0, " + std::to_string(V) + ")");
  }
  if (positions) {
    // A position either starts an example (0) or follows the previous token's in the row.
    for (int n = 0; n < N; n++) {
      const int t = n % T_, p = positions[n];
      if (p != 0 && (t == 0 || p != positions[n - 1] + 1))
        throw std::invalid_argument("forward: position " + std::to_string(p) + " at row index " +
                                    std::to_string(t) +
                                    " neither starts an example (0) nor follows the one before");
    }
  }
  ensure_activations(B, T_);
  act_.tokens.assign(tokens, tokens + N);
  if (targets) act_.targets.assign(targets, targets + N);
  else act_.targets.clear();
  if (positions) act_.positions.assign(positions, positions + N);
  else act_.positions.clear();
  const int32_t* pos = this->positions();

  ops::embedding_forward(act_.layers[0].x.data(), tokens, param(tok_embeddings_), N, d);
  for (int l = 0; l < c.n_layers; l++) {
    const Layer& L = layers_[l];
    LayerActs& A = act_.layers[l];
    T* x_next = l + 1 < c.n_layers ? act_.layers[l + 1].x.data() : act_.x_final.data();
    // attention block
    ops::rmsnorm_forward(A.xn1.data(), A.rstd1.data(), A.x.data(), param(L.attn_norm), N, d,
                         T(c.norm_eps));
    ops::linear_forward(A.q.data(), A.xn1.data(), param(L.wq), N, d, d);
    ops::linear_forward(A.k.data(), A.xn1.data(), param(L.wk), N, d, kvd);
    ops::linear_forward(A.v.data(), A.xn1.data(), param(L.wv), N, d, kvd);
    ops::rope_apply(A.q.data(), rope_cos_.data(), rope_sin_.data(), B, T_, c.n_heads,
                    c.head_dim(), false, pos);
    ops::rope_apply(A.k.data(), rope_cos_.data(), rope_sin_.data(), B, T_, c.n_kv_heads,
                    c.head_dim(), false, pos);
    ops::attention_forward(A.att.data(), A.lse.data(), A.q.data(), A.k.data(), A.v.data(), B,
                           T_, c.n_heads, c.n_kv_heads, c.head_dim(), pos);
    ops::linear_forward(A.h.data(), A.att.data(), param(L.wo), N, d, d);
    for (size_t i = 0; i < size_t(N) * d; i++) A.h[i] += A.x[i];
    // feed-forward block
    ops::rmsnorm_forward(A.xn2.data(), A.rstd2.data(), A.h.data(), param(L.ffn_norm), N, d,
                         T(c.norm_eps));
    ops::linear_forward(A.a.data(), A.xn2.data(), param(L.w1), N, d, hid);
    ops::linear_forward(A.b.data(), A.xn2.data(), param(L.w3), N, d, hid);
    ops::swiglu_forward(A.g.data(), A.a.data(), A.b.data(), size_t(N) * hid);
    ops::linear_forward(x_next, A.g.data(), param(L.w2), N, hid, d);
    for (size_t i = 0; i < size_t(N) * d; i++) x_next[i] += A.h[i];
  }
  ops::rmsnorm_forward(act_.xf.data(), act_.rstdf.data(), act_.x_final.data(), param(norm_), N, d,
                       T(c.norm_eps));
  ops::linear_forward(act_.logits.data(), act_.xf.data(), param(output_), N, d, V);
  learned_ = 0;
  if (!targets) return 0.0;
  ops::cross_entropy_forward(act_.losses.data(), act_.logits.data(), targets, N, V);
  double sum = 0;
  for (int n = 0; n < N; n++) {
    sum += double(act_.losses[n]);
    learned_ += targets[n] >= 0;
  }
  return learned_ ? sum / double(learned_) : 0.0;
}

template <class T>
void Model<T>::backward(T dloss) {
  const ModelConfig& c = config_;
  if (act_.targets.empty()) throw std::logic_error("backward: the last forward had no targets");
  const int B = act_.B, T_ = act_.seq, N = B * T_, d = c.dim, kvd = c.kv_dim(),
            hid = c.ffn_hidden, V = c.vocab_size;
  auto zero = [](std::vector<T>& v) { std::fill(v.begin(), v.end(), T(0)); };
  const int32_t* targets = act_.targets.data();
  const int32_t* pos = positions();

  // output projection and final norm; dx holds ∂loss/∂(block output) from here on
  ops::cross_entropy_backward_inplace(act_.logits.data(), targets, N, V, dloss);
  zero(act_.dxn);
  ops::linear_backward(act_.dxn.data(), grad(output_), act_.logits.data(), act_.xf.data(),
                       param(output_), N, d, V);
  zero(act_.dx);
  ops::rmsnorm_backward(act_.dx.data(), grad(norm_), act_.dxn.data(), act_.x_final.data(),
                        param(norm_), act_.rstdf.data(), N, d);

  for (int l = c.n_layers - 1; l >= 0; l--) {
    const Layer& L = layers_[l];
    LayerActs& A = act_.layers[l];
    // feed-forward block: x' = h + w2(silu(w1 n) ⊙ w3 n), n = RMSNorm(h)
    act_.dh = act_.dx;
    zero(act_.dg);
    ops::linear_backward(act_.dg.data(), grad(L.w2), act_.dx.data(), A.g.data(), param(L.w2), N, hid, d);
    zero(act_.da), zero(act_.db);
    ops::swiglu_backward(act_.da.data(), act_.db.data(), act_.dg.data(), A.a.data(), A.b.data(),
                         size_t(N) * hid);
    zero(act_.dxn);
    ops::linear_backward(act_.dxn.data(), grad(L.w1), act_.da.data(), A.xn2.data(), param(L.w1), N, d,
                         hid);
    ops::linear_backward(act_.dxn.data(), grad(L.w3), act_.db.data(), A.xn2.data(), param(L.w3), N, d,
                         hid);
    ops::rmsnorm_backward(act_.dh.data(), grad(L.ffn_norm), act_.dxn.data(), A.h.data(),
                          param(L.ffn_norm), A.rstd2.data(), N, d);
    // attention block: h = x + wo(Attention(rope(wq n), rope(wk n), wv n)), n = RMSNorm(x)
    act_.dx = act_.dh;
    zero(act_.datt);
    ops::linear_backward(act_.datt.data(), grad(L.wo), act_.dh.data(), A.att.data(), param(L.wo), N, d,
                         d);
    zero(act_.dq), zero(act_.dk), zero(act_.dv);
    ops::attention_backward(act_.dq.data(), act_.dk.data(), act_.dv.data(), act_.datt.data(),
                            A.q.data(), A.k.data(), A.v.data(), A.att.data(), A.lse.data(), B, T_,
                            c.n_heads, c.n_kv_heads, c.head_dim(), pos);
    ops::rope_apply(act_.dq.data(), rope_cos_.data(), rope_sin_.data(), B, T_, c.n_heads,
                    c.head_dim(), true, pos);
    ops::rope_apply(act_.dk.data(), rope_cos_.data(), rope_sin_.data(), B, T_, c.n_kv_heads,
                    c.head_dim(), true, pos);
    zero(act_.dxn);
    ops::linear_backward(act_.dxn.data(), grad(L.wq), act_.dq.data(), A.xn1.data(), param(L.wq), N, d,
                         d);
    ops::linear_backward(act_.dxn.data(), grad(L.wk), act_.dk.data(), A.xn1.data(), param(L.wk), N, d,
                         kvd);
    ops::linear_backward(act_.dxn.data(), grad(L.wv), act_.dv.data(), A.xn1.data(), param(L.wv), N, d,
                         kvd);
    ops::rmsnorm_backward(act_.dx.data(), grad(L.attn_norm), act_.dxn.data(), A.x.data(),
                          param(L.attn_norm), A.rstd1.data(), N, d);
  }
  if (T* dtable = grad(tok_embeddings_))
    ops::embedding_backward(dtable, act_.dx.data(), act_.tokens.data(), N, d);
}

template class Model<float>;
template class Model<double>;

}  // namespace herd
