// Kernel checks for bench/gpu: each entry point uploads host fp32 arrays (converted to the
// storage type on the device), poisons the outputs with NaN, runs one kernel (or one kernel
// pair, forward and backward) and downloads the results as fp32. Nothing here is used in
// training; it exists so that every kernel can be compared with engine/ops.h.
#include <cmath>
#include <memory>
#include <vector>

#include "herd_cuda.h"
#include "kernels.cuh"

namespace herd::cuda {
namespace {

// Device buffers of one check, freed together.
struct Scope {
  std::vector<void*> blocks;
  cudaStream_t s = nullptr;
  Scope() { CUDA_CHECK(cudaStreamCreate(&s)); }
  ~Scope() {
    cudaStreamSynchronize(s);
    for (void* p : blocks) cudaFree(p);
    cudaStreamDestroy(s);
  }
  template <class X>
  X* alloc(size_t n) {
    void* p = nullptr;
    CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(X)));
    blocks.push_back(p);
    return static_cast<X*>(p);
  }
  // Host fp32 → device T.
  template <class X>
  X* upload(const float* host, size_t n) {
    float* f = alloc<float>(n);
    CUDA_CHECK(cudaMemcpyAsync(f, host, n * sizeof(float), cudaMemcpyHostToDevice, s));
    if constexpr (sizeof(X) == 4) return reinterpret_cast<X*>(f);
    X* x = alloc<X>(n);
    convert(s, x, f, n);
    return x;
  }
  int32_t* upload_ints(const int32_t* host, size_t n) {
    int32_t* d = alloc<int32_t>(n);
    CUDA_CHECK(cudaMemcpyAsync(d, host, n * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    return d;
  }
  // An output buffer full of NaN, so an element the kernel never writes cannot pass.
  template <class X>
  X* poisoned(size_t n) {
    X* x = alloc<X>(n);
    fill(s, x, NAN, n);
    return x;
  }
  // Device T → host fp32.
  template <class X>
  void download(float* host, const X* dev, size_t n) {
    const float* f = reinterpret_cast<const float*>(dev);
    if constexpr (sizeof(X) != 4) {
      float* tmp = alloc<float>(n);
      to_float(s, tmp, dev, n);
      f = tmp;
    }
    CUDA_CHECK(cudaMemcpyAsync(host, f, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  }
};

// Runs body<float> or body<bf16>.
template <template <class> class Body, class... Args>
int by_type(int bf16_flag, Args&&... args) {
  return guarded([&] {
    if (bf16_flag) Body<bf16>::run(args...);
    else Body<float>::run(args...);
  });
}

template <class T>
struct MatmulCheck {
  static void run(int ta, int tb, int m, int n, int k, const float* a, const float* b, float beta,
                  float* c) {
    Scope sc;
    Blas blas;
    blas_create(blas, true);
    const DType t = dtype_of<T>();
    // The output keeps its values when beta ≠ 0 (accumulation), so it is not poisoned then.
    T* dc = beta != 0.0f ? sc.upload<T>(c, size_t(m) * n) : sc.poisoned<T>(size_t(m) * n);
    try {
      matmul(blas, sc.s, ta, tb, m, n, k, sc.upload<T>(a, size_t(m) * k), t, ta ? m : k,
             sc.upload<T>(b, size_t(k) * n), t, tb ? k : n, beta, dc, t, n);
      sc.download(c, dc, size_t(m) * n);
    } catch (...) {
      blas_destroy(blas);
      throw;
    }
    blas_destroy(blas);
  }
};

template <class T>
struct EmbeddingCheck {
  static void run(int deterministic, const int32_t* tokens, const float* table, const float* dout,
                  int N, int C, int V, float* out, float* dtable) {
    Scope sc;
    const int32_t* dtok = sc.upload_ints(tokens, N);
    T* dy = sc.poisoned<T>(size_t(N) * C);
    embedding_forward(sc.s, dy, dtok, sc.upload<T>(table, size_t(V) * C), N, C);
    sc.download(out, dy, size_t(N) * C);
    float* dt = sc.upload<float>(dtable, size_t(V) * C);  // accumulated into
    embedding_backward(sc.s, dt, sc.upload<T>(dout, size_t(N) * C), dtok, N, C, deterministic != 0);
    sc.download(dtable, dt, size_t(V) * C);
  }
};

template <class T>
struct RmsnormCheck {
  static void run(const float* x, const float* g, const float* dout, int N, int C, float eps,
                  float* y, float* rstd, float* dx, float* dg) {
    Scope sc;
    const T* dxin = sc.upload<T>(x, size_t(N) * C);
    const T* dgain = sc.upload<T>(g, C);
    T* dy = sc.poisoned<T>(size_t(N) * C);
    float* drstd = sc.poisoned<float>(N);
    rmsnorm_forward(sc.s, dy, drstd, dxin, dgain, N, C, eps);
    sc.download(y, dy, size_t(N) * C);
    sc.download(rstd, drstd, N);
    T* ddx = sc.upload<T>(dx, size_t(N) * C);     // accumulated into
    float* ddg = sc.upload<float>(dg, C);         // accumulated into
    float* partial = sc.poisoned<float>(size_t(rmsnorm_partial_rows(N)) * C);
    rmsnorm_backward(sc.s, ddx, ddg, partial, sc.upload<T>(dout, size_t(N) * C), dxin, dgain,
                     drstd, N, C);
    sc.download(dx, ddx, size_t(N) * C);
    sc.download(dg, ddg, C);
  }
};

template <class T>
struct RopeCheck {
  static void run(const float* x, int B, int Tn, int n_heads, int hd, double theta, int inverse,
                  const int32_t* positions, float* y) {
    Scope sc;
    const int half = hd / 2;
    std::vector<float> c(size_t(Tn) * half), s(c.size());
    for (int p = 0; p < Tn; p++)
      for (int i = 0; i < half; i++) {
        const double freq = std::pow(theta, -2.0 * i / hd);
        c[size_t(p) * half + i] = float(std::cos(p * freq));
        s[size_t(p) * half + i] = float(std::sin(p * freq));
      }
    const size_t n = size_t(B) * Tn * n_heads * hd;
    T* dx = sc.upload<T>(x, n);  // rotated in place
    rope(sc.s, dx, n_heads * hd, sc.upload<float>(c.data(), c.size()),
         sc.upload<float>(s.data(), s.size()), B, Tn, n_heads, hd, inverse != 0,
         positions ? sc.upload_ints(positions, size_t(B) * Tn) : nullptr);
    sc.download(y, dx, n);
  }
};

template <class T>
struct SwigluCheck {
  static void run(const float* a, const float* b, const float* dout, size_t n, float* out,
                  float* da, float* db) {
    Scope sc;
    const T *pa = sc.upload<T>(a, n), *pb = sc.upload<T>(b, n);
    T* po = sc.poisoned<T>(n);
    swiglu_forward(sc.s, po, pa, pb, n);
    sc.download(out, po, n);
    T *pda = sc.poisoned<T>(n), *pdb = sc.poisoned<T>(n);
    swiglu_backward(sc.s, pda, pdb, sc.upload<T>(dout, n), pa, pb, n);
    sc.download(da, pda, n);
    sc.download(db, pdb, n);
  }
};

template <class T>
struct CrossEntropyCheck {
  static void run(const float* logits, const int32_t* targets, int N, int V, float dloss,
                  float* losses, float* dlogits) {
    Scope sc;
    T* z = sc.upload<T>(logits, size_t(N) * V);
    const int32_t* t = sc.upload_ints(targets, N);
    float* l = sc.poisoned<float>(N);
    cross_entropy_forward(sc.s, l, z, t, N, V);
    sc.download(losses, l, N);
    cross_entropy_backward(sc.s, z, t, N, V, dloss);
    sc.download(dlogits, z, size_t(N) * V);
  }
};

template <class T>
struct AttentionCheck {
  static void run(AttentionKernels kernels, const float* q, const float* k, const float* v,
                  const float* dout, const int32_t* positions, int B, int Tn, int H, int KVH,
                  int hd, float* out, float* lse, float* dq, float* dk, float* dv) {
    Scope sc;
    const size_t nq = size_t(B) * Tn * H * hd, nkv = size_t(B) * Tn * KVH * hd;
    const AttentionShape a{B,        Tn,       H,       KVH,
                           hd,       H * hd,   KVH * hd, H * hd,
                           positions ? sc.upload_ints(positions, size_t(B) * Tn) : nullptr};
    const T *pq = sc.upload<T>(q, nq), *pk = sc.upload<T>(k, nkv), *pv = sc.upload<T>(v, nkv);
    T* po = sc.poisoned<T>(nq);
    float* plse = sc.poisoned<float>(size_t(B) * H * Tn);
    attention_forward(sc.s, a, po, plse, pq, pk, pv, kernels);
    sc.download(out, po, nq);
    sc.download(lse, plse, size_t(B) * H * Tn);
    T *pdq = sc.poisoned<T>(nq), *pdk = sc.poisoned<T>(nkv), *pdv = sc.poisoned<T>(nkv);
    float* dsum = sc.poisoned<float>(size_t(B) * H * Tn);
    attention_backward(sc.s, a, pdq, pdk, pdv, dsum, sc.upload<T>(dout, nq), pq, pk, pv, po, plse,
                       kernels);
    sc.download(dq, pdq, nq);
    sc.download(dk, pdk, nkv);
    sc.download(dv, pdv, nkv);
  }
};

}  // namespace
}  // namespace herd::cuda

using namespace herd::cuda;

extern "C" {

int herd_cuda_check_matmul(int bf16, int trans_a, int trans_b, int m, int n, int k, const float* a,
                           const float* b, float beta, float* c) {
  return by_type<MatmulCheck>(bf16, trans_a, trans_b, m, n, k, a, b, beta, c);
}

int herd_cuda_check_embedding(int bf16, int deterministic, const int32_t* tokens,
                              const float* table, const float* dout, int N, int C, int V,
                              float* out, float* dtable) {
  return by_type<EmbeddingCheck>(bf16, deterministic, tokens, table, dout, N, C, V, out, dtable);
}

int herd_cuda_check_rmsnorm(int bf16, const float* x, const float* g, const float* dout, int N,
                            int C, float eps, float* y, float* rstd, float* dx, float* dg) {
  return by_type<RmsnormCheck>(bf16, x, g, dout, N, C, eps, y, rstd, dx, dg);
}

int herd_cuda_check_rope(int bf16, const float* x, int B, int T, int n_heads, int head_dim,
                         double theta, int inverse, const int32_t* positions, float* y) {
  return by_type<RopeCheck>(bf16, x, B, T, n_heads, head_dim, theta, inverse, positions, y);
}

int herd_cuda_check_swiglu(int bf16, const float* a, const float* b, const float* dout, size_t n,
                           float* out, float* da, float* db) {
  return by_type<SwigluCheck>(bf16, a, b, dout, n, out, da, db);
}

int herd_cuda_check_cross_entropy(int bf16, const float* logits, const int32_t* targets, int N,
                                  int V, float dloss, float* losses, float* dlogits) {
  return by_type<CrossEntropyCheck>(bf16, logits, targets, N, V, dloss, losses, dlogits);
}

int herd_cuda_check_attention(int variant, const float* q, const float* k, const float* v,
                              const float* dout, const int32_t* positions, int B, int T,
                              int n_heads, int n_kv_heads, int head_dim, float* out, float* lse,
                              float* dq, float* dk, float* dv) {
  if (variant < 0 || variant > 2) {
    set_last_error(("herd_cuda_check_attention: variant " + std::to_string(variant) +
                    " is not 0 (fp32), 1 (bf16, tensor cores) or 2 (bf16, CUDA cores)")
                       .c_str());
    return -1;
  }
  // Named explicitly, so HERD_CUDA_ATTENTION does not change what a variant checks.
  const AttentionKernels kernels =
      variant == 1 ? AttentionKernels::tensor_cores : AttentionKernels::cuda_cores;
  return by_type<AttentionCheck>(variant != 0, kernels, q, k, v, dout, positions, B, T, n_heads,
                                 n_kv_heads, head_dim, out, lse, dq, dk, dv);
}

int herd_cuda_check_adamw(const float* grads, float* params, float* m, float* v, size_t n,
                          int decay, const herd_cuda_adamw* c, int64_t step, float grad_scale) {
  return guarded([&] {
    Scope sc;
    float* p = sc.upload<float>(params, n);
    float* pm = sc.upload<float>(m, n);
    float* pv = sc.upload<float>(v, n);
    bf16* w = sc.poisoned<bf16>(n);
    AdamWStep s;
    s.lr = float(c->lr);
    s.beta1 = float(c->beta1);
    s.beta2 = float(c->beta2);
    s.eps = float(c->eps);
    s.decay_factor = decay && c->weight_decay != 0.0 ? float(1.0 - c->lr * c->weight_decay) : 1.0f;
    s.step_size = float(c->lr / (1.0 - std::pow(c->beta1, double(step))));
    s.bias2_sqrt = float(std::sqrt(1.0 - std::pow(c->beta2, double(step))));
    s.grad_scale = grad_scale;
    adamw(sc.s, p, w, sc.upload<float>(grads, n), pm, pv, n, s);
    sc.download(params, p, n);
    sc.download(m, pm, n);
    sc.download(v, pv, n);
  });
}

int herd_cuda_check_grad_norm(const float* grads, size_t n, double* norm) {
  return guarded([&] {
    Scope sc;
    double* out = sc.alloc<double>(1);
    sum_squares(sc.s, out, sc.alloc<double>(1024), sc.upload<float>(grads, n), n);
    double sum = 0;
    CUDA_CHECK(cudaMemcpyAsync(&sum, out, sizeof sum, cudaMemcpyDeviceToHost, sc.s));
    CUDA_CHECK(cudaStreamSynchronize(sc.s));
    *norm = std::sqrt(sum);
  });
}

}  // extern "C"
