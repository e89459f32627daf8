// The LLaMA layers as plain functions, forward and backward, templated on the scalar type so
// the very same code runs in fp32 for training and in fp64 for finite-difference gradient
// checks (test/engine/gradcheck.cc). Layout: activations are row-major [N, C] with N = B·T
// tokens; weight matrices are [out, in] as in PyTorch's Linear, so y = x · Wᵀ.
//
// Every backward function ACCUMULATES into its gradient outputs (+=), so a tensor used twice
// (the tied embedding, the residual stream) just receives both contributions.
//
// Determinism: OpenMP loops give each output element to exactly one thread with a static
// partition and reduce in a fixed order; no atomics. Same inputs and thread count give the
// same bits.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace herd::ops {

// ---------------------------------------------------------------------------------------------
// Matrix products: C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, through OpenBLAS.

inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
                 int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// out[N,OC] = in[N,C] · W[OC,C]ᵀ
template <class T>
void linear_forward(T* out, const T* in, const T* w, int N, int C, int OC) {
  gemm(false, true, N, OC, C, T(1), in, C, w, C, T(0), out, OC);
}

// din[N,C] += dout[N,OC] · W[OC,C];  dW[OC,C] += dout[N,OC]ᵀ · in[N,C]
template <class T>
void linear_backward(T* din, T* dw, const T* dout, const T* in, const T* w, int N, int C,
                     int OC) {
  if (din) gemm(false, false, N, C, OC, T(1), dout, OC, w, C, T(1), din, C);
  gemm(true, false, OC, C, N, T(1), dout, OC, in, C, T(1), dw, C);
}

// ---------------------------------------------------------------------------------------------
// Token embedding: out[n] = table[token[n]].

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) std::copy_n(table + size_t(tokens[n]) * C, C, out + size_t(n) * C);
}

// dtable[token[n]] += dout[n]. Serial over tokens: a token can repeat, and the order of the
// sums must not depend on threads.
template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int N, int C) {
  for (int n = 0; n < N; n++) {
    T* row = dtable + size_t(tokens[n]) * C;
    const T* d = dout + size_t(n) * C;
    for (int i = 0; i < C; i++) row[i] += d[i];
  }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x²) + eps) · g. Saves 1/rms per row.

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* in, const T* g, int N, int C, T eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = in + size_t(n) * C;
    T* y = out + size_t(n) * C;
    T sum_sq = 0;
#pragma omp simd reduction(+ : sum_sq)
    for (int i = 0; i < C; i++) sum_sq += x[i] * x[i];
    T r = T(1) / std::sqrt(sum_sq / T(C) + eps);
    rstd[n] = r;
    for (int i = 0; i < C; i++) y[i] = x[i] * r * g[i];
  }
}

// With u = dy·g:  dx = r·u − x·r³·mean(u·x);  dg += Σₙ dy·x·r.
template <class T>
void rmsnorm_backward(T* din, T* dg, const T* dout, const T* in, const T* g, const T* rstd, int N,
                      int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* x = in + size_t(n) * C;
    const T* dy = dout + size_t(n) * C;
    T* dx = din + size_t(n) * C;
    T r = rstd[n];
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int i = 0; i < C; i++) dot += dy[i] * g[i] * x[i];
    T coef = dot * r * r * r / T(C);
    for (int i = 0; i < C; i++) dx[i] += r * dy[i] * g[i] - x[i] * coef;
  }
  // The gain's gradient sums over rows; each thread owns a slice of columns, rows in order.
#pragma omp parallel for schedule(static)
  for (int i = 0; i < C; i++) {
    T sum = 0;
    for (int n = 0; n < N; n++) sum += dout[size_t(n) * C + i] * in[size_t(n) * C + i] * rstd[n];
    dg[i] += sum;
  }
}

// ---------------------------------------------------------------------------------------------
// Rotary position embeddings (Su et al. 2021), as in Meta's LLaMA code: the head vector's
// consecutive pairs (x[2i], x[2i+1]) are rotated by the angle pos·θ^(−2i/head_dim).
// cos/sin tables are [max_seq_len, head_dim/2].

template <class T>
void rope_tables(std::vector<T>& cos_t, std::vector<T>& sin_t, int max_seq_len, int head_dim,
                 double theta) {
  int half = head_dim / 2;
  cos_t.resize(size_t(max_seq_len) * half);
  sin_t.resize(size_t(max_seq_len) * half);
  for (int p = 0; p < max_seq_len; p++)
    for (int i = 0; i < half; i++) {
      double freq = std::pow(theta, -2.0 * i / head_dim);
      cos_t[size_t(p) * half + i] = T(std::cos(p * freq));
      sin_t[size_t(p) * half + i] = T(std::sin(p * freq));
    }
}

// In place on x[B·T, n_heads·head_dim]; `inverse` rotates by −angle, which is the backward
// pass (the rotation is orthogonal, so its gradient is its transpose).
template <class T>
void rope_apply(T* x, const T* cos_t, const T* sin_t, int B, int Tn, int n_heads, int head_dim,
                bool inverse) {
  int half = head_dim / 2;
  T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < B * Tn; n++) {
    int pos = n % Tn;
    const T* c = cos_t + size_t(pos) * half;
    const T* s = sin_t + size_t(pos) * half;
    for (int h = 0; h < n_heads; h++) {
      T* v = x + (size_t(n) * n_heads + h) * head_dim;
      for (int i = 0; i < half; i++) {
        T x0 = v[2 * i], x1 = v[2 * i + 1];
        T sn = sign * s[i];
        v[2 * i] = x0 * c[i] - x1 * sn;
        v[2 * i + 1] = x0 * sn + x1 * c[i];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Causal attention without the T×T matrix (FlashAttention-2's algorithm on a CPU): each query
// row walks the keys at or before it in tiles of kKeyTile, keeping a running maximum m, a
// running normaliser l and a running weighted sum of values, rescaled whenever m grows
// (online softmax, Milakov & Gimelshein 2018). Only a tile of scores is ever held. The
// forward pass saves the row's log-sum-exp; the backward pass recomputes the probabilities
// from it instead of storing them.
//
// q, out: [B·T, n_heads·hd]; k, v: [B·T, n_kv_heads·hd]; lse: [B, n_heads, T]. Query head h
// reads key/value head h / (n_heads / n_kv_heads) (grouped-query attention).

constexpr int kKeyTile = 64;

template <class T>
T dot(const T* a, const T* b, int n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int B, int Tn,
                       int n_heads, int n_kv_heads, int hd) {
  const int group = n_heads / n_kv_heads;
  const int qs = n_heads * hd, kvs = n_kv_heads * hd;  // row strides
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < n_heads; h++) {
      const int kvh = h / group;
      T score[kKeyTile];
      std::vector<T> acc(hd);
      for (int t = 0; t < Tn; t++) {
        const T* qt = q + size_t(b * Tn + t) * qs + h * hd;
        T m = -std::numeric_limits<T>::infinity(), l = 0;
        std::fill(acc.begin(), acc.end(), T(0));
        for (int j0 = 0; j0 <= t; j0 += kKeyTile) {
          const int j1 = std::min(j0 + kKeyTile, t + 1);
          T tile_max = -std::numeric_limits<T>::infinity();
          for (int j = j0; j < j1; j++) {
            score[j - j0] = dot(qt, k + size_t(b * Tn + j) * kvs + kvh * hd, hd) * scale;
            tile_max = std::max(tile_max, score[j - j0]);
          }
          const T m_new = std::max(m, tile_max);
          const T correction = std::exp(m - m_new);  // exp(−inf) = 0 on the first tile
          l *= correction;
          for (int i = 0; i < hd; i++) acc[i] *= correction;
          for (int j = j0; j < j1; j++) {
            const T p = std::exp(score[j - j0] - m_new);
            l += p;
            const T* vj = v + size_t(b * Tn + j) * kvs + kvh * hd;
            for (int i = 0; i < hd; i++) acc[i] += p * vj[i];
          }
          m = m_new;
        }
        T* ot = out + size_t(b * Tn + t) * qs + h * hd;
        for (int i = 0; i < hd; i++) ot[i] = acc[i] / l;
        lse[(size_t(b) * n_heads + h) * Tn + t] = m + std::log(l);
      }
    }
}

// With P = softmax(S) recomputed from lse and Dₜ = dOₜ·Oₜ:
//   dPₜⱼ = dOₜ·Vⱼ,  dSₜⱼ = Pₜⱼ(dPₜⱼ − Dₜ),  dQₜ += scale·Σⱼ dSₜⱼ Kⱼ,
//   dKⱼ += scale·Σₜ dSₜⱼ Qₜ,  dVⱼ += Σₜ Pₜⱼ dOₜ.
// One thread owns a (batch, key/value head) pair and the query heads of its group, so dK and
// dV are summed by one thread in a fixed order.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int B, int Tn, int n_heads, int n_kv_heads,
                        int hd) {
  const int group = n_heads / n_kv_heads;
  const int qs = n_heads * hd, kvs = n_kv_heads * hd;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int kvh = 0; kvh < n_kv_heads; kvh++) {
      for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int t = 0; t < Tn; t++) {
          const size_t row = size_t(b * Tn + t);
          const T* qt = q + row * qs + h * hd;
          const T* dot_ = dout + row * qs + h * hd;
          T* dqt = dq + row * qs + h * hd;
          const T D = dot(dot_, out + row * qs + h * hd, hd);
          const T row_lse = lse[(size_t(b) * n_heads + h) * Tn + t];
          for (int j = 0; j <= t; j++) {
            const size_t krow = size_t(b * Tn + j) * kvs + kvh * hd;
            const T p = std::exp(dot(qt, k + krow, hd) * scale - row_lse);
            const T dp = dot(dot_, v + krow, hd);
            const T ds = p * (dp - D) * scale;
            T* dkj = dk + krow;
            T* dvj = dv + krow;
            const T* kj = k + krow;
            for (int i = 0; i < hd; i++) {
              dqt[i] += ds * kj[i];
              dkj[i] += ds * qt[i];
              dvj[i] += p * dot_[i];
            }
          }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU (Shazeer 2020): g = silu(a) ⊙ b with a = x·W1ᵀ, b = x·W3ᵀ; silu(a) = a·σ(a).

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <class T>
void swiglu_forward(T* out, const T* a, const T* b, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = a[i] * sigmoid(a[i]) * b[i];
}

// d silu(a)/da = σ(a)·(1 + a·(1 − σ(a))).
template <class T>
void swiglu_backward(T* da, T* db, const T* dout, const T* a, const T* b, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    const T s = sigmoid(a[i]);
    da[i] += dout[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] += dout[i] * a[i] * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy over the vocabulary: loss[n] = logsumexp(logits[n]) − logits[n][target[n]].

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const int32_t* targets, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const T* z = logits + size_t(n) * V;
    T m = *std::max_element(z, z + V);
    T sum = 0;
    for (int i = 0; i < V; i++) sum += std::exp(z[i] - m);
    losses[n] = m + std::log(sum) - z[targets[n]];
  }
}

// In place: logits[n] becomes dloss · (softmax(logits[n]) − onehot(target[n])), the gradient
// of dloss · Σₙ loss[n] (dloss = 1 / tokens for a mean).
template <class T>
void cross_entropy_backward_inplace(T* logits, const int32_t* targets, int N, int V, T dloss) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    T* z = logits + size_t(n) * V;
    T m = *std::max_element(z, z + V);
    T sum = 0;
    for (int i = 0; i < V; i++) {
      z[i] = std::exp(z[i] - m);
      sum += z[i];
    }
    for (int i = 0; i < V; i++) z[i] = z[i] / sum * dloss;
    z[targets[n]] -= dloss;
  }
}

}  // namespace herd::ops
