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
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace herd::ops {

// ---------------------------------------------------------------------------------------------
// Matrix products: C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, through OpenBLAS.
// OpenBLAS runs single-threaded (use_threads in trainer.cc sets it); the rows of C are split
// into one fixed block per OpenMP thread instead, so the engine has one thread pool (two
// pools fight over the cores) and each element is computed by one thread in a fixed order.

inline void blas_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                      const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void blas_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a,
                      int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda,
          const T* b, int ldb, T beta, T* c, int ldc) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int parts = std::max(1, std::min(threads, m / 16));
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
  for (int p = 0; p < parts; p++) {
    const int i0 = int(int64_t(m) * p / parts), i1 = int(int64_t(m) * (p + 1) / parts);
    const T* a_rows = trans_a ? a + i0 : a + size_t(i0) * lda;  // rows i0.. of op(A)
    blas_gemm(trans_a, trans_b, i1 - i0, n, k, alpha, a_rows, lda, b, ldb, beta,
              c + size_t(i0) * ldc, ldc);
  }
}

// exp for the hot loops. In float: Cephes' expf (x = n·ln2 + r, |r| ≤ ln2/2, a degree-6
// polynomial, 2ⁿ through the exponent bits), written so the compiler vectorises it (libm's
// expf is a scalar call); relative error below 2e-7, and exactly 0 below −87.3 (so masked
// scores at −inf give 0). In double (the gradient checks): the C library's exp.
inline float exp_approx(float x) {
  const float lo = -87.33654f, hi = 88.37626f;
  const float xc = std::min(std::max(x, lo), hi);
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < lo ? 0.0f : y * scale;
}
inline float fast_exp(float x) { return exp_approx(x); }
inline double fast_exp(double x) { return std::exp(x); }

// out[N,OC] = in[N,C] · W[OC,C]ᵀ
template <class T>
void linear_forward(T* out, const T* in, const T* w, int N, int C, int OC) {
  gemm(false, true, N, OC, C, T(1), in, C, w, C, T(0), out, OC);
}

// din[N,C] += dout[N,OC] · W[OC,C];  dW[OC,C] += dout[N,OC]ᵀ · in[N,C]  (no dW when null:
// a frozen weight)
template <class T>
void linear_backward(T* din, T* dw, const T* dout, const T* in, const T* w, int N, int C,
                     int OC) {
  if (din) gemm(false, false, N, C, OC, T(1), dout, OC, w, C, T(1), din, C);
  if (dw) gemm(true, false, OC, C, N, T(1), dout, OC, in, C, T(1), dw, C);
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

// With u = dy·g:  dx = r·u − x·r³·mean(u·x);  dg += Σₙ dy·x·r  (no dg when null).
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
  if (!dg) return;
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
// pass (the rotation is orthogonal, so its gradient is its transpose). Token n sits at
// position pos[n], or n mod T without `pos` (packed examples restart at 0: see below).
template <class T>
void rope_apply(T* x, const T* cos_t, const T* sin_t, int B, int Tn, int n_heads, int head_dim,
                bool inverse, const int32_t* pos = nullptr) {
  int half = head_dim / 2;
  T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < B * Tn; n++) {
    int p = pos ? pos[n] : n % Tn;
    const T* c = cos_t + size_t(p) * half;
    const T* s = sin_t + size_t(p) * half;
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
// Causal attention without the T×T matrix (FlashAttention-2's algorithm on a CPU). Queries
// are taken in blocks of kQueryTile rows; each block walks the keys at or before it in tiles
// of kKeyTile, so only a kQueryTile × kKeyTile tile of scores S = Q·Kᵀ/√d exists at a time.
// Per query row the forward pass keeps a running maximum m, a running normaliser l and a
// running weighted sum of values, rescaled whenever m grows (online softmax, Milakov &
// Gimelshein 2018), and saves the row's log-sum-exp. The backward pass recomputes each tile's
// probabilities from it instead of storing them. The tile products are small matrix products
// (gemm), the rest is row-wise arithmetic.
//
// q, out: [B·T, n_heads·hd]; k, v: [B·T, n_kv_heads·hd]; lse: [B, n_heads, T]. Query head h
// reads key/value head h / (n_heads / n_kv_heads) (grouped-query attention).
//
// Packed examples: with `pos`, the query at row index i sees only the keys of its own example,
// indices [i − pos[i], i] (its position counts the tokens before it in the example). Without
// it every row is one sequence, [0, i]. Key tiles before a query block's first visible key
// are skipped, so packing short examples costs less than one long causal row.

constexpr int kQueryTile = 64;
constexpr int kKeyTile = 64;

template <class T>
T dot(const T* a, const T* b, int n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

// The first key index query i of row b may see: i − pos, or 0 without positions.
inline int first_key(const int32_t* pos, int b, int Tn, int i) {
  return pos ? i - pos[size_t(b) * Tn + i] : 0;
}

// Scores of a tile, scaled, with keys after the query (causal mask) or before its example's
// first token at −inf.
template <class T>
void attention_scores(T* S, const T* q, int qs, const T* k, int kvs, int i0, int bq, int j0,
                      int bk, int hd, T scale, const int32_t* pos, int b, int Tn) {
  gemm(false, true, bq, bk, hd, scale, q, qs, k, kvs, T(0), S, kKeyTile);
  for (int i = 0; i < bq; i++) {
    T* row = S + i * kKeyTile;
    for (int j = std::max(0, i0 + i - j0 + 1); j < bk; j++)
      row[j] = -std::numeric_limits<T>::infinity();
    const int before = std::min(bk, first_key(pos, b, Tn, i0 + i) - j0);
    for (int j = 0; j < before; j++) row[j] = -std::numeric_limits<T>::infinity();
  }
}

// The first key tile a query block [i0, i0 + bq) needs: the tile of its earliest visible key.
inline int first_key_tile(const int32_t* pos, int b, int Tn, int i0, int bq) {
  int first = i0 + bq;
  for (int i = i0; i < i0 + bq; i++) first = std::min(first, first_key(pos, b, Tn, i));
  return first / kKeyTile * kKeyTile;
}

template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int B, int Tn,
                       int n_heads, int n_kv_heads, int hd, const int32_t* pos = nullptr) {
  const int group = n_heads / n_kv_heads;
  const int qs = n_heads * hd, kvs = n_kv_heads * hd;  // row strides
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < n_heads; h++) {
      const int kvh = h / group;
      std::vector<T> S(kQueryTile * kKeyTile), acc(size_t(kQueryTile) * hd), m(kQueryTile),
          l(kQueryTile);
      for (int i0 = 0; i0 < Tn; i0 += kQueryTile) {
        const int bq = std::min(kQueryTile, Tn - i0);
        const T* qb = q + size_t(b * Tn + i0) * qs + h * hd;
        std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
        std::fill(l.begin(), l.end(), T(0));
        std::fill(acc.begin(), acc.end(), T(0));
        for (int j0 = first_key_tile(pos, b, Tn, i0, bq); j0 < i0 + bq; j0 += kKeyTile) {
          const int bk = std::min(kKeyTile, i0 + bq - j0);
          const T* kb = k + size_t(b * Tn + j0) * kvs + kvh * hd;
          const T* vb = v + size_t(b * Tn + j0) * kvs + kvh * hd;
          attention_scores(S.data(), qb, qs, kb, kvs, i0, bq, j0, bk, hd, scale, pos, b, Tn);
          for (int i = 0; i < bq; i++) {
            T* s = S.data() + i * kKeyTile;
            const T m_new = std::max(m[i], *std::max_element(s, s + bk));
            if (m_new == -std::numeric_limits<T>::infinity()) {  // no visible key here yet
              std::fill(s, s + bk, T(0));
              continue;
            }
            const T correction = std::exp(m[i] - m_new);  // exp(−inf) = 0 on the first tile
            T sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < bk; j++) sum += (s[j] = fast_exp(s[j] - m_new));
            l[i] = l[i] * correction + sum;
            m[i] = m_new;
            for (int x = 0; x < hd; x++) acc[size_t(i) * hd + x] *= correction;
          }
          gemm(false, false, bq, hd, bk, T(1), S.data(), kKeyTile, vb, kvs, T(1), acc.data(), hd);
        }
        for (int i = 0; i < bq; i++) {
          T* o = out + size_t(b * Tn + i0 + i) * qs + h * hd;
          for (int x = 0; x < hd; x++) o[x] = acc[size_t(i) * hd + x] / l[i];
          lse[(size_t(b) * n_heads + h) * Tn + i0 + i] = m[i] + std::log(l[i]);
        }
      }
    }
}

// With P = exp(S − lse) recomputed per tile and Dₜ = dOₜ·Oₜ:
//   dP = dO·Vᵀ,  dS = P ⊙ (dP − D)/√d,  dQ += dS·K,  dK += dSᵀ·Q,  dV += Pᵀ·dO.
// One thread owns a (batch, key/value head) pair and the query heads of its group, so dK and
// dV are summed by one thread in a fixed order.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, int B, int Tn, int n_heads, int n_kv_heads,
                        int hd, const int32_t* pos = nullptr) {
  const int group = n_heads / n_kv_heads;
  const int qs = n_heads * hd, kvs = n_kv_heads * hd;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; b++)
    for (int kvh = 0; kvh < n_kv_heads; kvh++) {
      std::vector<T> P(kQueryTile * kKeyTile), dP(kQueryTile * kKeyTile), D(kQueryTile);
      for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int i0 = 0; i0 < Tn; i0 += kQueryTile) {
          const int bq = std::min(kQueryTile, Tn - i0);
          const size_t row0 = size_t(b * Tn + i0) * qs + h * hd;
          const T* row_lse = lse + (size_t(b) * n_heads + h) * Tn + i0;
          for (int i = 0; i < bq; i++)
            D[i] = dot(dout + row0 + size_t(i) * qs, out + row0 + size_t(i) * qs, hd);
          for (int j0 = first_key_tile(pos, b, Tn, i0, bq); j0 < i0 + bq; j0 += kKeyTile) {
            const int bk = std::min(kKeyTile, i0 + bq - j0);
            const size_t krow0 = size_t(b * Tn + j0) * kvs + kvh * hd;
            attention_scores(P.data(), q + row0, qs, k + krow0, kvs, i0, bq, j0, bk, hd, scale,
                             pos, b, Tn);
            gemm(false, true, bq, bk, hd, T(1), dout + row0, qs, v + krow0, kvs, T(0), dP.data(),
                 kKeyTile);
            for (int i = 0; i < bq; i++) {
              T* p = P.data() + i * kKeyTile;
              T* ds = dP.data() + i * kKeyTile;
              const T l = row_lse[i], d = D[i];
#pragma omp simd
              for (int j = 0; j < bk; j++) {
                p[j] = fast_exp(p[j] - l);  // masked scores give exp(−inf) = 0
                ds[j] = p[j] * (ds[j] - d) * scale;  // dP becomes dS
              }
            }
            gemm(false, false, bq, hd, bk, T(1), dP.data(), kKeyTile, k + krow0, kvs, T(1),
                 dq + row0, qs);
            gemm(true, false, bk, hd, bq, T(1), dP.data(), kKeyTile, q + row0, qs, T(1),
                 dk + krow0, kvs);
            gemm(true, false, bk, hd, bq, T(1), P.data(), kKeyTile, dout + row0, qs, T(1),
                 dv + krow0, kvs);
          }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU (Shazeer 2020): g = silu(a) ⊙ b with a = x·W1ᵀ, b = x·W3ᵀ; silu(a) = a·σ(a).

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

template <class T>
void swiglu_forward(T* out, const T* a, const T* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = a[i] * sigmoid(a[i]) * b[i];
}

// d silu(a)/da = σ(a)·(1 + a·(1 − σ(a))).
template <class T>
void swiglu_backward(T* da, T* db, const T* dout, const T* a, const T* b, size_t n) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const T s = sigmoid(a[i]);
    da[i] += dout[i] * b[i] * s * (T(1) + a[i] * (T(1) - s));
    db[i] += dout[i] * a[i] * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy over the vocabulary: loss[n] = logsumexp(logits[n]) − logits[n][target[n]].
// A target below 0 is not learned (a prompt token of an instruction example, padding): its
// loss and its gradient are 0.
constexpr int32_t kIgnoreTarget = -1;

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const int32_t* targets, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) {
      losses[n] = 0;
      continue;
    }
    const T* z = logits + size_t(n) * V;
    T m = *std::max_element(z, z + V);
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++) sum += fast_exp(z[i] - m);
    losses[n] = m + std::log(sum) - z[targets[n]];
  }
}

// In place: logits[n] becomes dloss · (softmax(logits[n]) − onehot(target[n])), the gradient
// of dloss · Σₙ loss[n] (dloss = 1 / learned tokens for a mean); 0 for an ignored target.
template <class T>
void cross_entropy_backward_inplace(T* logits, const int32_t* targets, int N, int V, T dloss) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    T* z = logits + size_t(n) * V;
    if (targets[n] < 0) {
      std::fill(z, z + V, T(0));
      continue;
    }
    T m = *std::max_element(z, z + V);
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < V; i++) {
      z[i] = fast_exp(z[i] - m);
      sum += z[i];
    }
    const T scale = dloss / sum;
    for (int i = 0; i < V; i++) z[i] *= scale;
    z[targets[n]] -= dloss;
  }
}

}  // namespace herd::ops
