// The device model: buffers, forward, backward with bucketed gradient all-reduce, AdamW step.
// The order of operations mirrors engine/model.cc line for line, so the two read side by side.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "model.cuh"

namespace herd::cuda {

namespace {

// Device memory owned by one model, freed together; counts what it holds.
class Arena {
 public:
  ~Arena() {
    for (void* p : blocks_) cudaFree(p);
  }
  template <class X>
  X* alloc(size_t n) {
    void* p = nullptr;
    const size_t size = std::max<size_t>(1, n) * sizeof(X);
    CUDA_CHECK(cudaMalloc(&p, size));
    blocks_.push_back(p);
    bytes_ += size;
    return static_cast<X*>(p);
  }
  size_t bytes() const { return bytes_; }

 private:
  std::vector<void*> blocks_;
  size_t bytes_ = 0;
};

// A run of adjacent parameter tensors with the same weight-decay flag: one AdamW launch.
struct DecayRun {
  size_t lo, hi;
  bool decay;
};

template <class T>
class DeviceModel final : public herd_cuda_model {
 public:
  DeviceModel(const herd_cuda_model_desc& desc, const herd_cuda_run_config& run,
              const float* params);
  ~DeviceModel() override;
  double forward(const int32_t* tokens, const int32_t* targets, const int32_t* positions, int B,
                 int Tn) override;
  void backward(float dloss, bool last_micro_batch) override;
  void zero_grad() override;
  double step(const herd_cuda_adamw& c) override;
  void get_params(float* out) override;
  void get_grads(float* out) override;
  void get_losses(float* out) override;
  void set_params(const float* params) override;
  void get_grads_range(size_t offset, size_t n, float* out) override;
  void set_params_range(size_t offset, size_t n, const float* params) override;
  void get_optimizer_state(float* m, float* v, int64_t* steps) override;
  void set_optimizer_state(const float* m, const float* v, int64_t steps) override;
  void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  void attach_nccl(const NcclId& id, int rank, int world, bool shard) override;
  size_t bytes() const override { return arena_.bytes() + blas_.workspace_bytes; }

 private:
  struct LayerActs {
    T *x, *xn1, *qkv, *att, *h, *xn2, *a, *b, *g;
    float *rstd1, *rstd2, *lse;
  };
  static constexpr DType kT = dtype_of<T>();

  const T* w(size_t offset) const { return weights_ + offset; }
  float* dw(size_t offset) const { return grads_ + offset; }
  // C = op(A)·op(B) + beta·C with T operands; weight gradients use matmul_dw.
  void mm(bool ta, bool tb, int m, int n, int k, const T* a, int lda, const T* b, int ldb,
          float beta, T* c, int ldc) {
    matmul(blas_, stream_, ta, tb, m, n, k, a, kT, lda, b, kT, ldb, beta, c, kT, ldc);
  }
  // dW[m,n] += dY[k,m]ᵀ·X[k,n], accumulated in the fp32 gradient buffer.
  void mm_dw(int m, int n, int k, const T* dy, int ldy, const T* x, int ldx, float* dwt) {
    matmul(blas_, stream_, true, false, m, n, k, dy, kT, ldy, x, kT, ldx, 1.0f, dwt, DType::f32, n);
  }
  void copy(T* dst, const T* src, size_t n) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, stream_));
  }
  void reduce_bucket(size_t lo, size_t hi);  // after the backward produced grads[lo, hi)
  void check_range(size_t offset, size_t n, const char* what) const {
    if (offset > P_ || n > P_ - offset)
      throw std::invalid_argument(std::string(what) + ": elements [" + std::to_string(offset) + ", " +
                                  std::to_string(offset + n) + ") lie outside the " +
                                  std::to_string(P_) + " parameters");
  }
  void resize_flat(size_t padded);

  herd_cuda_model_desc desc_;
  std::vector<herd_cuda_layer> layers_;
  std::vector<DecayRun> runs_;
  herd_cuda_run_config run_;
  int d_, kvd_, hid_, V_, H_, qkv_stride_, maxN_;
  size_t P_, padded_;

  Arena arena_;
  Blas blas_;
  cudaStream_t stream_ = nullptr, comm_stream_ = nullptr;
  cudaEvent_t grads_ready_ = nullptr, comm_done_ = nullptr;

  float *master_, *grads_, *m_ = nullptr, *v_ = nullptr;
  T* weights_;
  float *rope_cos_, *rope_sin_;
  std::vector<LayerActs> acts_;
  T *x_final_, *xf_, *logits_;
  float *rstdf_, *losses_, *rms_partial_, *dsum_;
  double *norm_, *norm_partial_;
  int32_t *tokens_, *targets_, *positions_;
  bool packed_ = false;  // the last forward had positions (packed examples)
  T *dx_, *dh_, *dxn_, *datt_, *dqkv_, *da_, *db_, *dg_;
  int B_ = 0, T_ = 0;
  bool have_targets_ = false;
  int64_t step_count_ = 0;

  NcclComm comm_ = nullptr;
  int rank_ = 0, world_ = 1;
  bool shard_ = false;
};

template <class T>
DeviceModel<T>::DeviceModel(const herd_cuda_model_desc& desc, const herd_cuda_run_config& run,
                            const float* params)
    : desc_(desc), layers_(desc.layers, desc.layers + desc.n_layers), run_(run) {
  desc_.layers = nullptr;  // the copies above are the ones used
  desc_.tensors = nullptr;
  d_ = desc.dim;
  H_ = desc.n_heads;
  const int hd = d_ / H_;
  kvd_ = desc.n_kv_heads * hd;
  hid_ = desc.ffn_hidden;
  V_ = desc.vocab_size;
  qkv_stride_ = d_ + 2 * kvd_;
  P_ = padded_ = desc.n_params;
  maxN_ = run.micro_batch * run.seq_len;
  if (run.micro_batch <= 0 || run.seq_len <= 0 || run.seq_len > desc.max_seq_len)
    throw Error("run config: microBatch and seqLen must be positive, seqLen ≤ maxSeqLen");
  if (hd != 64 && hd != 128)
    throw Error("model: head dim " + std::to_string(hd) + " (dim / nHeads) must be 64 or 128");
  for (const herd_cuda_layer& L : layers_)
    if (L.wk != L.wq + size_t(d_) * d_ || L.wv != L.wk + size_t(kvd_) * d_)
      throw Error("model layout: wq, wk, wv must be adjacent (as ParamLayout places them)");
  for (int i = 0; i < desc.n_tensors; i++) {
    const herd_cuda_tensor& t = desc.tensors[i];
    if (!runs_.empty() && runs_.back().decay == bool(t.decay) && runs_.back().hi == t.offset)
      runs_.back().hi = t.offset + t.size;
    else runs_.push_back({t.offset, t.offset + t.size, bool(t.decay)});
  }

  CUDA_CHECK(cudaSetDevice(run.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready_, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&comm_done_, cudaEventDisableTiming));
  blas_create(blas_, run.deterministic != 0);

  // Parameters: fp32 master, the T copy the products read, fp32 gradients.
  master_ = arena_.alloc<float>(P_);
  weights_ = arena_.alloc<T>(P_);
  grads_ = arena_.alloc<float>(P_);
  CUDA_CHECK(cudaMemcpy(master_, params, P_ * sizeof(float), cudaMemcpyHostToDevice));
  convert(stream_, weights_, master_, P_);
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, P_ * sizeof(float), stream_));
  m_ = arena_.alloc<float>(P_);
  v_ = arena_.alloc<float>(P_);
  CUDA_CHECK(cudaMemsetAsync(m_, 0, P_ * sizeof(float), stream_));
  CUDA_CHECK(cudaMemsetAsync(v_, 0, P_ * sizeof(float), stream_));

  // Rotary tables, computed in double as ops::rope_tables.
  const int half = hd / 2;
  std::vector<float> c(size_t(desc.max_seq_len) * half), s(c.size());
  for (int p = 0; p < desc.max_seq_len; p++)
    for (int i = 0; i < half; i++) {
      const double freq = std::pow(desc.rope_theta, -2.0 * i / hd);
      c[size_t(p) * half + i] = float(std::cos(p * freq));
      s[size_t(p) * half + i] = float(std::sin(p * freq));
    }
  rope_cos_ = arena_.alloc<float>(c.size());
  rope_sin_ = arena_.alloc<float>(s.size());
  CUDA_CHECK(cudaMemcpy(rope_cos_, c.data(), c.size() * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(rope_sin_, s.data(), s.size() * sizeof(float), cudaMemcpyHostToDevice));

  // Activations kept for the backward. With recompute, the normalised inputs and the SwiGLU
  // product are not kept per layer: one shared buffer each, refilled in the backward.
  const size_t N = maxN_;
  T* shared_xn1 = run.recompute ? arena_.alloc<T>(N * d_) : nullptr;
  T* shared_xn2 = run.recompute ? arena_.alloc<T>(N * d_) : nullptr;
  T* shared_g = run.recompute ? arena_.alloc<T>(N * hid_) : nullptr;
  acts_.resize(desc.n_layers);
  for (LayerActs& A : acts_) {
    A.x = arena_.alloc<T>(N * d_);
    A.xn1 = run.recompute ? shared_xn1 : arena_.alloc<T>(N * d_);
    A.qkv = arena_.alloc<T>(N * qkv_stride_);
    A.att = arena_.alloc<T>(N * d_);
    A.h = arena_.alloc<T>(N * d_);
    A.xn2 = run.recompute ? shared_xn2 : arena_.alloc<T>(N * d_);
    A.a = arena_.alloc<T>(N * hid_);
    A.b = arena_.alloc<T>(N * hid_);
    A.g = run.recompute ? shared_g : arena_.alloc<T>(N * hid_);
    A.rstd1 = arena_.alloc<float>(N);
    A.rstd2 = arena_.alloc<float>(N);
    A.lse = arena_.alloc<float>(N * H_);
  }
  x_final_ = arena_.alloc<T>(N * d_);
  xf_ = arena_.alloc<T>(N * d_);
  logits_ = arena_.alloc<T>(N * V_);
  rstdf_ = arena_.alloc<float>(N);
  losses_ = arena_.alloc<float>(N);
  tokens_ = arena_.alloc<int32_t>(N);
  targets_ = arena_.alloc<int32_t>(N);
  positions_ = arena_.alloc<int32_t>(N);
  // Gradient scratch, reused by every layer.
  dx_ = arena_.alloc<T>(N * d_);
  dh_ = arena_.alloc<T>(N * d_);
  dxn_ = arena_.alloc<T>(N * d_);
  datt_ = arena_.alloc<T>(N * d_);
  dqkv_ = arena_.alloc<T>(N * qkv_stride_);
  da_ = arena_.alloc<T>(N * hid_);
  db_ = arena_.alloc<T>(N * hid_);
  dg_ = arena_.alloc<T>(N * hid_);
  dsum_ = arena_.alloc<float>(N * H_);
  rms_partial_ = arena_.alloc<float>(size_t(rmsnorm_partial_rows(maxN_)) * d_);
  norm_ = arena_.alloc<double>(1);
  norm_partial_ = arena_.alloc<double>(1024);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
DeviceModel<T>::~DeviceModel() {
  if (stream_) cudaStreamSynchronize(stream_);
  if (comm_stream_) cudaStreamSynchronize(comm_stream_);
  if (comm_) nccl()->CommDestroy(comm_);
  blas_destroy(blas_);
  if (grads_ready_) cudaEventDestroy(grads_ready_);
  if (comm_done_) cudaEventDestroy(comm_done_);
  if (stream_) cudaStreamDestroy(stream_);
  if (comm_stream_) cudaStreamDestroy(comm_stream_);
}

template <class T>
double DeviceModel<T>::forward(const int32_t* tokens, const int32_t* targets,
                               const int32_t* positions, int B, int Tn) {
  if (B <= 0 || Tn <= 0 || B * Tn > maxN_ || Tn > run_.seq_len)
    throw Error("forward: B=" + std::to_string(B) + ", T=" + std::to_string(Tn) +
                " exceeds the run config (microBatch " + std::to_string(run_.micro_batch) +
                ", seqLen " + std::to_string(run_.seq_len) + ")");
  const int N = B * Tn;
  size_t learned = 0;
  for (int n = 0; n < N; n++) {
    // a target of −1 (kIgnoreTarget) is not learned
    if (tokens[n] < 0 || tokens[n] >= V_ || (targets && (targets[n] < -1 || targets[n] >= V_)))
      throw Error("forward: token id out of range [0, " + std::to_string(V_) + ")");
    if (positions && (positions[n] < 0 || positions[n] > n % Tn))
      throw Error("forward: position " + std::to_string(positions[n]) + " of token " +
                  std::to_string(n) + " lies outside its row");
    learned += targets && targets[n] >= 0;
  }
  B_ = B;
  T_ = Tn;
  have_targets_ = targets != nullptr;
  packed_ = positions != nullptr;
  CUDA_CHECK(cudaMemcpyAsync(tokens_, tokens, N * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  if (targets)
    CUDA_CHECK(
        cudaMemcpyAsync(targets_, targets, N * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  if (positions)
    CUDA_CHECK(cudaMemcpyAsync(positions_, positions, N * sizeof(int32_t), cudaMemcpyHostToDevice,
                               stream_));
  const float eps = float(desc_.norm_eps);
  const int hd = d_ / H_;
  const int32_t* pos = positions ? positions_ : nullptr;
  const AttentionShape shape{B, Tn, H_, desc_.n_kv_heads, hd, qkv_stride_, qkv_stride_, d_, pos};

  embedding_forward(stream_, acts_[0].x, tokens_, w(desc_.tok_embeddings), N, d_);
  for (int l = 0; l < desc_.n_layers; l++) {
    const herd_cuda_layer& L = layers_[l];
    LayerActs& A = acts_[l];
    T* x_next = l + 1 < desc_.n_layers ? acts_[l + 1].x : x_final_;
    // attention block: h = x + wo·Attention(rope(wq n), rope(wk n), wv n), n = RMSNorm(x)
    rmsnorm_forward(stream_, A.xn1, A.rstd1, A.x, w(L.attn_norm), N, d_, eps);
    mm(false, true, N, qkv_stride_, d_, A.xn1, d_, w(L.wq), d_, 0.0f, A.qkv, qkv_stride_);
    rope(stream_, A.qkv, qkv_stride_, rope_cos_, rope_sin_, B, Tn, H_, hd, false, pos);
    rope(stream_, A.qkv + d_, qkv_stride_, rope_cos_, rope_sin_, B, Tn, desc_.n_kv_heads, hd, false,
         pos);
    attention_forward(stream_, shape, A.att, A.lse, A.qkv, A.qkv + d_, A.qkv + d_ + kvd_);
    copy(A.h, A.x, size_t(N) * d_);
    mm(false, true, N, d_, d_, A.att, d_, w(L.wo), d_, 1.0f, A.h, d_);
    // feed-forward block: x' = h + w2·(silu(w1 n) ⊙ w3 n), n = RMSNorm(h)
    rmsnorm_forward(stream_, A.xn2, A.rstd2, A.h, w(L.ffn_norm), N, d_, eps);
    mm(false, true, N, hid_, d_, A.xn2, d_, w(L.w1), d_, 0.0f, A.a, hid_);
    mm(false, true, N, hid_, d_, A.xn2, d_, w(L.w3), d_, 0.0f, A.b, hid_);
    swiglu_forward(stream_, A.g, A.a, A.b, size_t(N) * hid_);
    copy(x_next, A.h, size_t(N) * d_);
    mm(false, true, N, d_, hid_, A.g, hid_, w(L.w2), hid_, 1.0f, x_next, d_);
  }
  rmsnorm_forward(stream_, xf_, rstdf_, x_final_, w(desc_.norm), N, d_, eps);
  mm(false, true, N, V_, d_, xf_, d_, w(desc_.output), d_, 0.0f, logits_, V_);
  if (!targets) return 0.0;
  cross_entropy_forward(stream_, losses_, logits_, targets_, N, V_);
  std::vector<float> losses(N);
  CUDA_CHECK(cudaMemcpyAsync(losses.data(), losses_, N * sizeof(float), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  double sum = 0;
  for (float x : losses) sum += double(x);  // 0 for targets not learned
  return learned ? sum / double(learned) : 0.0;
}

template <class T>
void DeviceModel<T>::backward(float dloss, bool last_micro_batch) {
  if (!have_targets_) throw Error("backward: the last forward had no targets");
  const int B = B_, Tn = T_, N = B * Tn, hd = d_ / H_;
  const float eps = float(desc_.norm_eps);
  const int32_t* pos = packed_ ? positions_ : nullptr;
  const AttentionShape shape{B, Tn, H_, desc_.n_kv_heads, hd, qkv_stride_, qkv_stride_, d_, pos};
  const bool reduce = comm_ && last_micro_batch && !shard_;

  // output projection and final norm; dx holds ∂loss/∂(block output) from here on
  cross_entropy_backward(stream_, logits_, targets_, N, V_, dloss);
  mm(false, false, N, d_, V_, logits_, V_, w(desc_.output), d_, 0.0f, dxn_, d_);
  mm_dw(V_, d_, N, logits_, V_, xf_, d_, dw(desc_.output));
  CUDA_CHECK(cudaMemsetAsync(dx_, 0, size_t(N) * d_ * sizeof(T), stream_));
  rmsnorm_backward(stream_, dx_, dw(desc_.norm), rms_partial_, dxn_, x_final_, w(desc_.norm),
                   rstdf_, N, d_);
  if (reduce)  // the head: norm and (untied) output, which follow the layers in the layout
    reduce_bucket(desc_.norm, desc_.tied_embeddings ? desc_.norm + d_ : P_);

  for (int l = desc_.n_layers - 1; l >= 0; l--) {
    const herd_cuda_layer& L = layers_[l];
    LayerActs& A = acts_[l];
    if (run_.recompute) {  // refill what the forward did not keep
      rmsnorm_forward(stream_, A.xn2, A.rstd2, A.h, w(L.ffn_norm), N, d_, eps);
      swiglu_forward(stream_, A.g, A.a, A.b, size_t(N) * hid_);
    }
    // feed-forward block
    copy(dh_, dx_, size_t(N) * d_);
    mm(false, false, N, hid_, d_, dx_, d_, w(L.w2), hid_, 0.0f, dg_, hid_);
    mm_dw(d_, hid_, N, dx_, d_, A.g, hid_, dw(L.w2));
    swiglu_backward(stream_, da_, db_, dg_, A.a, A.b, size_t(N) * hid_);
    mm(false, false, N, d_, hid_, da_, hid_, w(L.w1), d_, 0.0f, dxn_, d_);
    mm(false, false, N, d_, hid_, db_, hid_, w(L.w3), d_, 1.0f, dxn_, d_);
    mm_dw(hid_, d_, N, da_, hid_, A.xn2, d_, dw(L.w1));
    mm_dw(hid_, d_, N, db_, hid_, A.xn2, d_, dw(L.w3));
    rmsnorm_backward(stream_, dh_, dw(L.ffn_norm), rms_partial_, dxn_, A.h, w(L.ffn_norm), A.rstd2,
                     N, d_);
    // attention block
    if (run_.recompute) rmsnorm_forward(stream_, A.xn1, A.rstd1, A.x, w(L.attn_norm), N, d_, eps);
    copy(dx_, dh_, size_t(N) * d_);
    mm(false, false, N, d_, d_, dh_, d_, w(L.wo), d_, 0.0f, datt_, d_);
    mm_dw(d_, d_, N, dh_, d_, A.att, d_, dw(L.wo));
    attention_backward(stream_, shape, dqkv_, dqkv_ + d_, dqkv_ + d_ + kvd_, dsum_, datt_, A.qkv,
                       A.qkv + d_, A.qkv + d_ + kvd_, A.att, A.lse);
    rope(stream_, dqkv_, qkv_stride_, rope_cos_, rope_sin_, B, Tn, H_, hd, true, pos);
    rope(stream_, dqkv_ + d_, qkv_stride_, rope_cos_, rope_sin_, B, Tn, desc_.n_kv_heads, hd, true,
         pos);
    mm(false, false, N, d_, qkv_stride_, dqkv_, qkv_stride_, w(L.wq), d_, 0.0f, dxn_, d_);
    mm_dw(qkv_stride_, d_, N, dqkv_, qkv_stride_, A.xn1, d_, dw(L.wq));
    rmsnorm_backward(stream_, dx_, dw(L.attn_norm), rms_partial_, dxn_, A.x, w(L.attn_norm),
                     A.rstd1, N, d_);
    if (reduce) reduce_bucket(L.wq, L.ffn_norm + d_);  // the layer's tensors are adjacent
  }
  embedding_backward(stream_, dw(desc_.tok_embeddings), dx_, tokens_, N, d_,
                     run_.deterministic != 0);
  if (reduce) reduce_bucket(desc_.tok_embeddings, desc_.tok_embeddings + size_t(V_) * d_);
  if (comm_ && last_micro_batch && shard_) {
    // One reduce-scatter of the whole (padded) gradient: this rank keeps the mean of its shard.
    const size_t S = padded_ / world_;
    CUDA_CHECK(cudaEventRecord(grads_ready_, stream_));
    CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
    nccl_check(nccl()->ReduceScatter(grads_, grads_ + rank_ * S, S, kNcclFloat32, kNcclAvg, comm_,
                                     comm_stream_),
               "ncclReduceScatter(gradients)");
  }
  if (comm_ && last_micro_batch) CUDA_CHECK(cudaEventRecord(comm_done_, comm_stream_));
}

// The backward has finished writing grads[lo, hi): average it across ranks on the comm
// stream while the compute stream goes on with the layers below.
template <class T>
void DeviceModel<T>::reduce_bucket(size_t lo, size_t hi) {
  CUDA_CHECK(cudaEventRecord(grads_ready_, stream_));
  CUDA_CHECK(cudaStreamWaitEvent(comm_stream_, grads_ready_, 0));
  nccl_check(nccl()->AllReduce(grads_ + lo, grads_ + lo, hi - lo, kNcclFloat32, kNcclAvg, comm_,
                               comm_stream_),
             "ncclAllReduce(gradient bucket)");
}

template <class T>
void DeviceModel<T>::zero_grad() {
  CUDA_CHECK(cudaMemsetAsync(grads_, 0, padded_ * sizeof(float), stream_));
}

template <class T>
double DeviceModel<T>::step(const herd_cuda_adamw& c) {
  if (comm_) CUDA_CHECK(cudaStreamWaitEvent(stream_, comm_done_, 0));
  // This rank's part of the parameters: all of them, or its shard.
  const size_t S = padded_ / world_;
  const size_t lo = shard_ ? rank_ * S : 0, hi = shard_ ? std::min(P_, lo + S) : P_;
  sum_squares(stream_, norm_, norm_partial_, grads_ + lo, hi > lo ? hi - lo : 0);
  if (shard_)
    nccl_check(nccl()->AllReduce(norm_, norm_, 1, kNcclFloat64, kNcclSum, comm_, stream_),
               "ncclAllReduce(gradient norm)");
  double sum_sq = 0;
  CUDA_CHECK(cudaMemcpyAsync(&sum_sq, norm_, sizeof sum_sq, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const double norm = std::sqrt(sum_sq);

  step_count_++;
  const double coef = c.grad_clip > 0 ? c.grad_clip / (norm + 1e-6) : 1.0;  // as the CPU trainer
  AdamWStep s;
  s.lr = float(c.lr);
  s.beta1 = float(c.beta1);
  s.beta2 = float(c.beta2);
  s.eps = float(c.eps);
  s.step_size = float(c.lr / (1.0 - std::pow(c.beta1, double(step_count_))));
  s.bias2_sqrt = float(std::sqrt(1.0 - std::pow(c.beta2, double(step_count_))));
  s.grad_scale = coef < 1.0 ? float(coef) : 1.0f;
  for (const DecayRun& r : runs_) {
    const size_t a = std::max(r.lo, lo), b = std::min(r.hi, hi);
    if (a >= b) continue;
    s.decay_factor = r.decay && c.weight_decay != 0.0 ? float(1.0 - c.lr * c.weight_decay) : 1.0f;
    adamw(stream_, master_ + a, weights_ + a, grads_ + a, m_ + (a - lo), v_ + (a - lo), b - a, s);
  }
  if (shard_)  // every rank's updated shard of the compute weights, to every rank
    nccl_check(nccl()->AllGather(weights_ + lo, weights_, S,
                                 kT == DType::f32 ? kNcclFloat32 : kNcclBfloat16, comm_, stream_),
               "ncclAllGather(weights)");
  return norm;
}

template <class T>
void DeviceModel<T>::get_params(float* out) {
  if (shard_) {  // only this rank's shard of the master weights is current
    const size_t S = padded_ / world_;
    nccl_check(nccl()->AllGather(master_ + rank_ * S, master_, S, kNcclFloat32, comm_, stream_),
               "ncclAllGather(master weights)");
  }
  CUDA_CHECK(cudaMemcpyAsync(out, master_, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
void DeviceModel<T>::get_grads(float* out) {
  if (comm_) CUDA_CHECK(cudaStreamWaitEvent(stream_, comm_done_, 0));
  CUDA_CHECK(cudaMemcpyAsync(out, grads_, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
void DeviceModel<T>::get_losses(float* out) {
  CUDA_CHECK(cudaMemcpyAsync(out, losses_, size_t(B_) * T_ * sizeof(float), cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
void DeviceModel<T>::set_params(const float* params) {
  CUDA_CHECK(cudaMemcpyAsync(master_, params, P_ * sizeof(float), cudaMemcpyHostToDevice, stream_));
  convert(stream_, weights_, master_, P_);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
void DeviceModel<T>::get_grads_range(size_t offset, size_t n, float* out) {
  check_range(offset, n, "herd_cuda_get_grads_range");
  if (comm_) CUDA_CHECK(cudaStreamWaitEvent(stream_, comm_done_, 0));
  CUDA_CHECK(cudaMemcpyAsync(out, grads_ + offset, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

template <class T>
void DeviceModel<T>::set_params_range(size_t offset, size_t n, const float* params) {
  check_range(offset, n, "herd_cuda_set_params_range");
  if (shard_) throw std::invalid_argument("herd_cuda_set_params_range: the master weights are sharded");
  CUDA_CHECK(cudaMemcpyAsync(master_ + offset, params, n * sizeof(float), cudaMemcpyHostToDevice,
                             stream_));
  convert(stream_, weights_ + offset, master_ + offset, n);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// The moments live whole on every rank, or (sharded) as this rank's slice [rank·S, rank·S + S)
// of the padded layout; the host arrays are always the whole unpadded layout.
template <class T>
void DeviceModel<T>::get_optimizer_state(float* m, float* v, int64_t* steps) {
  if (shard_) {
    const size_t S = padded_ / world_;
    float* whole = arena_.alloc<float>(padded_);  // once per checkpoint; freed with the model
    for (auto [shard, out] : {std::pair{m_, m}, std::pair{v_, v}}) {
      nccl_check(nccl()->AllGather(shard, whole, S, kNcclFloat32, comm_, stream_),
                 "ncclAllGather(optimizer state)");
      CUDA_CHECK(cudaMemcpyAsync(out, whole, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
  } else {
    CUDA_CHECK(cudaMemcpyAsync(m, m_, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemcpyAsync(v, v_, P_ * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (steps) *steps = step_count_;
}

template <class T>
void DeviceModel<T>::set_optimizer_state(const float* m, const float* v, int64_t steps) {
  const size_t S = padded_ / world_;
  const size_t lo = shard_ ? rank_ * S : 0, hi = shard_ ? std::min(P_, lo + S) : P_;
  if (shard_) {  // the pad beyond P_ stays zero
    CUDA_CHECK(cudaMemsetAsync(m_, 0, S * sizeof(float), stream_));
    CUDA_CHECK(cudaMemsetAsync(v_, 0, S * sizeof(float), stream_));
  }
  if (hi > lo) {
    CUDA_CHECK(cudaMemcpyAsync(m_, m + lo, (hi - lo) * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaMemcpyAsync(v_, v + lo, (hi - lo) * sizeof(float), cudaMemcpyHostToDevice, stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  step_count_ = steps;
}

// Grows the flat parameter buffers to `padded` elements (a multiple of the world size, so
// reduce-scatter and all-gather split them evenly), keeping their contents, zeroing the pad.
template <class T>
void DeviceModel<T>::resize_flat(size_t padded) {
  if (padded == padded_) return;
  auto grow = [&](auto*& p) {
    using X = std::remove_reference_t<decltype(*p)>;
    X* q = arena_.alloc<X>(padded);
    CUDA_CHECK(cudaMemsetAsync(q, 0, padded * sizeof(X), stream_));
    CUDA_CHECK(cudaMemcpyAsync(q, p, P_ * sizeof(X), cudaMemcpyDeviceToDevice, stream_));
    p = q;  // the old block stays in the arena until the model goes
  };
  grow(master_);
  grow(weights_);
  grow(grads_);
  padded_ = padded;
}

template <class T>
void DeviceModel<T>::attach_nccl(const NcclId& id, int rank, int world, bool shard) {
  std::string why;
  const Nccl* n = nccl(&why);
  if (!n) throw Error("NCCL: " + why);
  if (comm_) throw Error("NCCL: this model already has a communicator");
  if (world <= 0 || rank < 0 || rank >= world)
    throw Error("NCCL: rank " + std::to_string(rank) + " is not in [0, world " +
                std::to_string(world) + ")");
  CUDA_CHECK(cudaSetDevice(run_.device));
  nccl_check(n->CommInitRank(&comm_, world, id, rank), "ncclCommInitRank");
  rank_ = rank;
  world_ = world;
  shard_ = shard;
  if (shard) {
    resize_flat((P_ + world - 1) / world * world);
    const size_t S = padded_ / world;
    m_ = arena_.alloc<float>(S);  // the full-size moments from create stay unused
    v_ = arena_.alloc<float>(S);
    CUDA_CHECK(cudaMemsetAsync(m_, 0, S * sizeof(float), stream_));
    CUDA_CHECK(cudaMemsetAsync(v_, 0, S * sizeof(float), stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace

std::unique_ptr<herd_cuda_model> create_model(const herd_cuda_model_desc& desc,
                                              const herd_cuda_run_config& run,
                                              const float* params) {
  if (run.bf16) return std::make_unique<DeviceModel<bf16>>(desc, run, params);
  return std::make_unique<DeviceModel<float>>(desc, run, params);
}

}  // namespace herd::cuda
