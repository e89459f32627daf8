// The CUDA backend's kernels, one file per concept, declared here as host-side launchers.
// Conventions follow engine/ops.h: activations row-major [N, C] with N = B·T; weights
// [out, in]; T is the activation storage type (float or bf16), arithmetic is float; weight
// gradients are fp32 and accumulate (+=). Each launcher is instantiated for float and bf16.
#pragma once
#include <cublasLt.h>

#include "common.cuh"

namespace herd::cuda {

// ---- matmul.cu (cuBLASLt): C[m,n] = op(A)·op(B) + beta·C, row-major, fp32 accumulation.
enum class DType { f32, bf16 };
template <class T>
constexpr DType dtype_of() {
  return sizeof(T) == 4 ? DType::f32 : DType::bf16;
}
struct MatmulPlans;  // gemm.cu: per product shape, its descriptors and chosen algorithm
struct Blas {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  bool deterministic = false;
  // A model multiplies the same few dozen shapes every step; the heuristic is asked once each.
  MatmulPlans* plans = nullptr;
};
void blas_create(Blas& blas, bool deterministic);
void blas_destroy(Blas& blas);
void matmul(const Blas& blas, cudaStream_t stream, bool trans_a, bool trans_b, int m, int n, int k,
            const void* a, DType at, int lda, const void* b, DType bt, int ldb, float beta,
            void* c, DType ct, int ldc);

// ---- encoder.cu: out[n] = table[tokens[n]];  dtable[tokens[n]] += dout[n].
template <class T>
void embedding_forward(cudaStream_t s, T* out, const int32_t* tokens, const T* table, int N, int C);
template <class T>
void embedding_backward(cudaStream_t s, float* dtable, const T* dout, const int32_t* tokens, int N,
                        int C, bool deterministic);

// ---- rmsnorm.cu: y = x·rstd·g. Backward: din += …; dg += … (through `partial`, a scratch of
// rmsnorm_partial_rows() × C floats, summed in a fixed order: no atomics).
template <class T>
void rmsnorm_forward(cudaStream_t s, T* out, float* rstd, const T* in, const T* g, int N, int C,
                     float eps);
int rmsnorm_partial_rows(int N);
template <class T>
void rmsnorm_backward(cudaStream_t s, T* din, float* dg, float* partial, const T* dout,
                      const T* in, const T* g, const float* rstd, int N, int C);

// ---- rope.cu: rotates heads [n_heads, head_dim] found at x + row·stride, in place;
// `inverse` rotates back (the backward pass). cos/sin: [max_seq_len, head_dim/2]. Token n
// sits at position n mod Tn, or positions[n] (device, [B·Tn]) for packed examples.
template <class T>
void rope(cudaStream_t s, T* x, int stride, const float* cos_t, const float* sin_t, int B, int Tn,
          int n_heads, int head_dim, bool inverse, const int32_t* positions = nullptr);

// ---- swiglu.cu: out = silu(a)·b; backward writes da, db (not +=: they are fresh buffers).
template <class T>
void swiglu_forward(cudaStream_t s, T* out, const T* a, const T* b, size_t n);
template <class T>
void swiglu_backward(cudaStream_t s, T* da, T* db, const T* dout, const T* a, const T* b,
                     size_t n);

// ---- cross_entropy.cu: losses[n] = logsumexp(z[n]) − z[n][target]; backward overwrites the
// logits with dloss·(softmax − onehot), row by row, keeping no probability matrix.
template <class T>
void cross_entropy_forward(cudaStream_t s, float* losses, const T* logits, const int32_t* targets,
                           int N, int V);
template <class T>
void cross_entropy_backward(cudaStream_t s, T* logits, const int32_t* targets, int N, int V,
                            float dloss);

// ---- attention.cu: causal flash attention with grouped-query heads. q/k/v rows have strides
// (in elements) qs/kvs, out/dout os; dq stride qs, dk/dv kvs. lse, dsum: [B, n_heads, T].
// Backward writes dq, dk, dv (not +=). head_dim 64 or 128.
// Kernels: fp32 runs on the CUDA cores; bf16 on tensor cores (attention_tc.cu) unless
// HERD_CUDA_ATTENTION=simt picks the CUDA-core kernels. The checks name the kernels instead.
struct AttentionShape {
  int B, T, n_heads, n_kv_heads, head_dim, qs, kvs, os;  // os: row stride of out and dout
  // Packed examples (device, [B·T], or null): each token's position in its example, 0 where
  // one starts; a query then sees only the keys of its own example (engine/ops.h).
  const int32_t* pos = nullptr;
};

// Whether query i of batch row b sees key j: causal (j ≤ i), inside the sequence, and with
// packed examples no further back than the query's own example's start. Rows past the end
// (i ≥ T) see the keys before them, which keeps their softmax finite; they are never stored.
__device__ __forceinline__ bool attention_sees(const AttentionShape& a, int b, int i, int j) {
  if (j > i || j >= a.T) return false;
  return !a.pos || i >= a.T || j >= i - a.pos[size_t(b) * a.T + i];
}
enum class AttentionKernels { automatic, cuda_cores, tensor_cores };
template <class T>
void attention_forward(cudaStream_t s, const AttentionShape& a, T* out, float* lse, const T* q,
                       const T* k, const T* v,
                       AttentionKernels kernels = AttentionKernels::automatic);
template <class T>
void attention_backward(cudaStream_t s, const AttentionShape& a, T* dq, T* dk, T* dv, float* dsum,
                        const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const float* lse, AttentionKernels kernels = AttentionKernels::automatic);

// ---- adamw.cu: the optimizer, the global norm and conversions.
struct AdamWStep {
  float lr, beta1, beta2, eps, decay_factor;  // decay_factor = 1 − lr·wd, or 1
  float step_size, bias2_sqrt;                 // lr / (1 − β1ᵗ), √(1 − β2ᵗ)
  float grad_scale;                            // clipping coefficient (1 when not clipped)
};
template <class T>
void adamw(cudaStream_t s, float* master, T* weights, const float* grads, float* m, float* v,
           size_t n, const AdamWStep& step);
// Σ g² over n elements into *out (double, device), in a fixed order; partial: 1024 doubles.
void sum_squares(cudaStream_t s, double* out, double* partial, const float* g, size_t n);
template <class T>
void convert(cudaStream_t s, T* out, const float* in, size_t n);
template <class T>
void to_float(cudaStream_t s, float* out, const T* in, size_t n);
template <class T>
void fill(cudaStream_t s, T* x, float value, size_t n);
template <class T>
void add(cudaStream_t s, T* y, const T* x, size_t n);  // y += x

}  // namespace herd::cuda
