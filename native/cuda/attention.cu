// Causal self-attention without the T×T matrix: FlashAttention-2's algorithm (Dao 2023).
//
// Forward, one block per (64 queries, head, batch row): the block walks the key tiles at or
// before its queries; per query row it keeps a running maximum m, normaliser l and weighted
// sum of values, rescaled whenever m grows (online softmax), and saves lse = m + log l.
// Backward recomputes each tile's probabilities P = exp(S − lse) from it, with D = rowsum(dO∘O):
//   dP = dO·Vᵀ,  dS = P∘(dP − D)/√d,  dQ = dS·K,  dK = dSᵀ·Q,  dV = Pᵀ·dO.
// Two kernels so that no sum needs atomics (deterministic by construction): one block per key
// tile sums dK and dV over every query of its head group, one block per query tile sums dQ.
//
// Inside a block: 256 threads, four per row (of queries, or of keys); a thread owns the
// head-dimension entries x ≡ its index mod 4 (so a warp's four reads of a row hit four banks),
// and tiles sit in shared memory as fp32 with rows padded by one float (no bank conflicts
// between rows). The tile products are plain FMAs on the CUDA cores: these kernels are the
// fp32 path (whose checks ask for a relative error bf16 operands cannot give) and the bf16
// fallback. bf16 storage runs on tensor cores by default (attention_tc.cu); the choice is
// made at the end of this file.
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "attention.cuh"

namespace herd::cuda {

constexpr int kTile = 64;     // queries per forward/dQ block, keys per tile
constexpr int kQTileBwd = 32; // queries per step of the dK/dV block
constexpr int kThreads = 256;

// Copies rows [row0, row0 + rows) of one head (columns col..col+HD) into a padded tile,
// zero past the sequence's end.
template <class T, int HD>
__device__ void load_tile(float* tile, const T* src, int stride, int b, int Tn, int row0, int rows,
                          int col, float scale) {
  for (int idx = threadIdx.x; idx < rows * HD; idx += blockDim.x) {
    const int r = idx / HD, x = idx % HD, pos = row0 + r;
    tile[r * (HD + 1) + x] =
        pos < Tn ? to_float(src[size_t(b * Tn + pos) * stride + col + x]) * scale : 0.0f;
  }
}

template <int HD>
__device__ __forceinline__ float row_dot(const float* a, const float* b) {
  float s = 0.0f;
#pragma unroll 16
  for (int x = 0; x < HD; x++) s += a[x] * b[x];
  return s;
}

template <class T, int HD>
__global__ void __launch_bounds__(kThreads)
attention_forward_kernel(AttentionShape a, T* out, float* lse, const T* q, const T* k, const T* v) {
  extern __shared__ float shared[];
  float* Qs = shared;                    // [kTile][HD+1], pre-scaled by 1/√d
  float* Ks = Qs + kTile * (HD + 1);     // [kTile][HD+1]
  float* Vs = Ks + kTile * (HD + 1);     // [kTile][HD+1]
  float* P = Vs + kTile * (HD + 1);      // [kTile][kTile+1]
  const int i0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (a.n_heads / a.n_kv_heads);
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const float scale = rsqrtf(float(HD));

  load_tile<T, HD>(Qs, q, a.qs, b, a.T, i0, kTile, h * HD, scale);
  float m = -INFINITY, l = 0.0f, acc[HD / 4];
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) acc[xx] = 0.0f;

  for (int j0 = 0; j0 <= i0 && j0 < a.T; j0 += kTile) {
    __syncthreads();  // the previous tile is no longer read
    load_tile<T, HD>(Ks, k, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
    load_tile<T, HD>(Vs, v, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
    __syncthreads();
    // This thread's 16 scores of row r: keys sub, sub+4, …; the causal mask sets later keys
    // (and keys past the end) to −inf.
    float s[kTile / 4], tile_max = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kTile / 4; jj++) {
      const int j = sub + 4 * jj;
      const bool visible = attention_sees(a, b, i0 + r, j0 + j);
      s[jj] = visible ? row_dot<HD>(Qs + r * (HD + 1), Ks + j * (HD + 1)) : -INFINITY;
      tile_max = fmaxf(tile_max, s[jj]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    // −inf only while every key so far is masked (a packed example starts later): the
    // exponentials below then use 0 instead, giving p = 0 and l = 0, not exp(−inf + inf).
    const float m_new = fmaxf(m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    float sum = 0.0f;
#pragma unroll
    for (int jj = 0; jj < kTile / 4; jj++) {
      const float p = expf(s[jj] - m_use);  // exp(−inf) = 0 for masked keys
      P[r * (kTile + 1) + sub + 4 * jj] = p;
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float correction = expf(m - m_use);  // 0 on the first tile
    l = l * correction + sum;
    m = m_new;
    __syncwarp();  // row r's probabilities, written by its four lanes, are read by all four
#pragma unroll
    for (int xx = 0; xx < HD / 4; xx++) {
      float o = acc[xx] * correction;
      for (int j = 0; j < kTile; j++) o += P[r * (kTile + 1) + j] * Vs[j * (HD + 1) + 4 * xx + sub];
      acc[xx] = o;
    }
  }
  const int pos = i0 + r;
  if (pos >= a.T) return;
  T* o = out + size_t(b * a.T + pos) * a.os + h * HD;
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) o[4 * xx + sub] = from_float<T>(acc[xx] / l);
  if (sub == 0) lse[(size_t(b) * a.n_heads + h) * a.T + pos] = m + logf(l);
}

// D[b, h, t] = Σₓ dO·O, one warp per row.
template <class T>
__global__ void attention_dsum_kernel(AttentionShape a, float* dsum, const T* dout, const T* out) {
  const size_t row = size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= size_t(a.B) * a.n_heads * a.T) return;
  const int pos = int(row % a.T), h = int(row / a.T % a.n_heads), b = int(row / a.T / a.n_heads);
  const size_t at = size_t(b * a.T + pos) * a.os + h * a.head_dim;
  float s = 0.0f;
  for (int x = lane; x < a.head_dim; x += 32) s += to_float(dout[at + x]) * to_float(out[at + x]);
  s = warp_sum(s);
  if (lane == 0) dsum[row] = s;
}

// dK and dV of one key tile, summed over the queries of every head in its group.
template <class T, int HD>
__global__ void __launch_bounds__(kThreads)
attention_dkdv_kernel(AttentionShape a, T* dk, T* dv, const float* dsum, const T* dout, const T* q,
                      const T* k, const T* v, const float* lse) {
  extern __shared__ float shared[];
  float* Ks = shared;                       // [kTile][HD+1]
  float* Vs = Ks + kTile * (HD + 1);        // [kTile][HD+1]
  float* Qs = Vs + kTile * (HD + 1);        // [kQTileBwd][HD+1]
  float* dOs = Qs + kQTileBwd * (HD + 1);   // [kQTileBwd][HD+1]
  float* P = dOs + kQTileBwd * (HD + 1);    // [kQTileBwd][kTile+1]
  float* dS = P + kQTileBwd * (kTile + 1);  // [kQTileBwd][kTile+1]
  float* lse_s = dS + kQTileBwd * (kTile + 1);
  float* d_s = lse_s + kQTileBwd;
  const int j0 = blockIdx.x * kTile, kvh = blockIdx.y, b = blockIdx.z;
  const int group = a.n_heads / a.n_kv_heads;
  const int kr = threadIdx.x / 4, sub = threadIdx.x % 4;
  const float scale = rsqrtf(float(HD));

  load_tile<T, HD>(Ks, k, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
  load_tile<T, HD>(Vs, v, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
  float dk_acc[HD / 4], dv_acc[HD / 4];
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) dk_acc[xx] = dv_acc[xx] = 0.0f;

  for (int h = kvh * group; h < (kvh + 1) * group; h++)
    for (int i0 = j0 / kQTileBwd * kQTileBwd; i0 < a.T; i0 += kQTileBwd) {
      __syncthreads();  // the previous query tile is no longer read
      load_tile<T, HD>(Qs, q, a.qs, b, a.T, i0, kQTileBwd, h * HD, 1.0f);
      load_tile<T, HD>(dOs, dout, a.os, b, a.T, i0, kQTileBwd, h * HD, 1.0f);
      for (int i = threadIdx.x; i < kQTileBwd; i += blockDim.x) {
        const bool in = i0 + i < a.T;
        const size_t at = (size_t(b) * a.n_heads + h) * a.T + i0 + i;
        lse_s[i] = in ? lse[at] : INFINITY;  // rows past the end get P = 0
        d_s[i] = in ? dsum[at] : 0.0f;
      }
      __syncthreads();
      // Key kr against queries sub, sub+4, …
#pragma unroll
      for (int ii = 0; ii < kQTileBwd / 4; ii++) {
        const int i = sub + 4 * ii;
        const bool visible = i0 + i < a.T && attention_sees(a, b, i0 + i, j0 + kr);
        float p = 0.0f, ds = 0.0f;
        if (visible) {
          p = expf(row_dot<HD>(Qs + i * (HD + 1), Ks + kr * (HD + 1)) * scale - lse_s[i]);
          const float dp = row_dot<HD>(dOs + i * (HD + 1), Vs + kr * (HD + 1));
          ds = p * (dp - d_s[i]) * scale;
        }
        P[i * (kTile + 1) + kr] = p;
        dS[i * (kTile + 1) + kr] = ds;
      }
      __syncwarp();  // column kr was written by this thread's four lanes and is read by them
#pragma unroll
      for (int xx = 0; xx < HD / 4; xx++) {
        const int x = 4 * xx + sub;
        float sv = dv_acc[xx], sk = dk_acc[xx];
        for (int i = 0; i < kQTileBwd; i++) {
          sv += P[i * (kTile + 1) + kr] * dOs[i * (HD + 1) + x];
          sk += dS[i * (kTile + 1) + kr] * Qs[i * (HD + 1) + x];
        }
        dv_acc[xx] = sv;
        dk_acc[xx] = sk;
      }
    }
  const int pos = j0 + kr;
  if (pos >= a.T) return;
  const size_t at = size_t(b * a.T + pos) * a.kvs + kvh * HD;
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) {
    dk[at + 4 * xx + sub] = from_float<T>(dk_acc[xx]);
    dv[at + 4 * xx + sub] = from_float<T>(dv_acc[xx]);
  }
}

// dQ of one query tile, summed over the key tiles at or before it.
template <class T, int HD>
__global__ void __launch_bounds__(kThreads)
attention_dq_kernel(AttentionShape a, T* dq, const float* dsum, const T* dout, const T* q,
                    const T* k, const T* v, const float* lse) {
  extern __shared__ float shared[];
  float* Qs = shared;                    // [kTile][HD+1]
  float* dOs = Qs + kTile * (HD + 1);    // [kTile][HD+1]
  float* Ks = dOs + kTile * (HD + 1);    // [kTile][HD+1]
  float* Vs = Ks + kTile * (HD + 1);     // [kTile][HD+1]
  float* dS = Vs + kTile * (HD + 1);     // [kTile][kTile+1]
  const int i0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (a.n_heads / a.n_kv_heads);
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;
  const float scale = rsqrtf(float(HD));
  const int pos = i0 + r;
  const size_t row_at = (size_t(b) * a.n_heads + h) * a.T + pos;
  const float row_lse = pos < a.T ? lse[row_at] : INFINITY, row_d = pos < a.T ? dsum[row_at] : 0.0f;

  load_tile<T, HD>(Qs, q, a.qs, b, a.T, i0, kTile, h * HD, 1.0f);
  load_tile<T, HD>(dOs, dout, a.os, b, a.T, i0, kTile, h * HD, 1.0f);
  float acc[HD / 4];
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) acc[xx] = 0.0f;

  for (int j0 = 0; j0 <= i0 && j0 < a.T; j0 += kTile) {
    __syncthreads();
    load_tile<T, HD>(Ks, k, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
    load_tile<T, HD>(Vs, v, a.kvs, b, a.T, j0, kTile, kvh * HD, 1.0f);
    __syncthreads();
#pragma unroll
    for (int jj = 0; jj < kTile / 4; jj++) {
      const int j = sub + 4 * jj;
      const bool visible = attention_sees(a, b, pos, j0 + j);
      float ds = 0.0f;
      if (visible) {
        const float p = expf(row_dot<HD>(Qs + r * (HD + 1), Ks + j * (HD + 1)) * scale - row_lse);
        const float dp = row_dot<HD>(dOs + r * (HD + 1), Vs + j * (HD + 1));
        ds = p * (dp - row_d) * scale;
      }
      dS[r * (kTile + 1) + j] = ds;
    }
    __syncwarp();
#pragma unroll
    for (int xx = 0; xx < HD / 4; xx++) {
      float s = acc[xx];
      for (int j = 0; j < kTile; j++) s += dS[r * (kTile + 1) + j] * Ks[j * (HD + 1) + 4 * xx + sub];
      acc[xx] = s;
    }
  }
  if (pos >= a.T) return;
  const size_t at = size_t(b * a.T + pos) * a.qs + h * HD;
#pragma unroll
  for (int xx = 0; xx < HD / 4; xx++) dq[at + 4 * xx + sub] = from_float<T>(acc[xx]);
}

namespace {

void check_shape(const AttentionShape& a) {
  if (a.head_dim != 64 && a.head_dim != 128)
    throw Error("attention: head dim " + std::to_string(a.head_dim) +
                " is not supported by the CUDA kernels (64 or 128)");
}

template <int HD>
constexpr size_t tile_floats(int rows) {
  return size_t(rows) * (HD + 1);
}

template <class T, int HD>
void forward(cudaStream_t s, const AttentionShape& a, T* out, float* lse, const T* q, const T* k,
             const T* v) {
  const size_t shared = (3 * tile_floats<HD>(kTile) + kTile * (kTile + 1)) * sizeof(float);
  launch(attention_forward_kernel<T, HD>, dim3(ceil_div(a.T, kTile), a.n_heads, a.B), kThreads,
         shared, s, a, out, lse, q, k, v);
}

// D = rowsum(dO∘O), which both backward paths read.
template <class T>
void dsum_rows(cudaStream_t s, const AttentionShape& a, float* dsum, const T* dout, const T* out) {
  const size_t rows = size_t(a.B) * a.n_heads * a.T;
  attention_dsum_kernel<<<ceil_div(rows, 8), 256, 0, s>>>(a, dsum, dout, out);
  LAUNCH_CHECK();
}

template <class T, int HD>
void backward(cudaStream_t s, const AttentionShape& a, T* dq, T* dk, T* dv, const float* dsum,
              const T* dout, const T* q, const T* k, const T* v, const float* lse) {
  const size_t kv_shared = (2 * tile_floats<HD>(kTile) + 2 * tile_floats<HD>(kQTileBwd) +
                            2 * kQTileBwd * (kTile + 1) + 2 * kQTileBwd) *
                           sizeof(float);
  launch(attention_dkdv_kernel<T, HD>, dim3(ceil_div(a.T, kTile), a.n_kv_heads, a.B), kThreads,
         kv_shared, s, a, dk, dv, dsum, dout, q, k, v, lse);
  const size_t q_shared = (4 * tile_floats<HD>(kTile) + kTile * (kTile + 1)) * sizeof(float);
  launch(attention_dq_kernel<T, HD>, dim3(ceil_div(a.T, kTile), a.n_heads, a.B), kThreads, q_shared,
         s, a, dq, dsum, dout, q, k, v, lse);
}

// HERD_CUDA_ATTENTION, read once: unset or "tensor", bf16 attention runs on tensor cores;
// "simt", on the CUDA cores (the fallback, should the tensor-core kernels prove wrong on a
// GPU). Anything else is an error rather than a silent default.
bool tensor_cores_by_default() {
  static const bool tensor = [] {
    const char* v = std::getenv("HERD_CUDA_ATTENTION");
    if (v == nullptr || std::strcmp(v, "tensor") == 0) return true;
    if (std::strcmp(v, "simt") == 0) return false;
    throw Error(std::string("HERD_CUDA_ATTENTION is '") + v +
                "': allowed values are 'tensor' (the default) and 'simt'");
  }();
  return tensor;
}

// Tensor cores only for bf16 storage: fp32 has no fp32-accurate tensor-core product here.
template <class T>
bool use_tensor_cores(AttentionKernels kernels) {
  constexpr bool is_bf16 = std::is_same_v<T, bf16>;
  switch (kernels) {
    case AttentionKernels::cuda_cores:
      return false;
    case AttentionKernels::tensor_cores:
      if (!is_bf16) throw Error("attention: the tensor-core kernels need bf16 storage");
      return true;
    case AttentionKernels::automatic:
      break;
  }
  return is_bf16 && tensor_cores_by_default();
}

}  // namespace

template <class T>
void attention_forward(cudaStream_t s, const AttentionShape& a, T* out, float* lse, const T* q,
                       const T* k, const T* v, AttentionKernels kernels) {
  check_shape(a);
  const bool tensor = use_tensor_cores<T>(kernels);  // fp32 on tensor cores throws here
  if constexpr (std::is_same_v<T, bf16>)
    if (tensor) return attention_forward_tc(s, a, out, lse, q, k, v);
  if (a.head_dim == 64) forward<T, 64>(s, a, out, lse, q, k, v);
  else forward<T, 128>(s, a, out, lse, q, k, v);
}

template <class T>
void attention_backward(cudaStream_t s, const AttentionShape& a, T* dq, T* dk, T* dv, float* dsum,
                        const T* dout, const T* q, const T* k, const T* v, const T* out,
                        const float* lse, AttentionKernels kernels) {
  check_shape(a);
  const bool tensor = use_tensor_cores<T>(kernels);  // before any launch: a bad choice throws
  dsum_rows(s, a, dsum, dout, out);
  if constexpr (std::is_same_v<T, bf16>)
    if (tensor) return attention_backward_tc(s, a, dq, dk, dv, dsum, dout, q, k, v, lse);
  if (a.head_dim == 64) backward<T, 64>(s, a, dq, dk, dv, dsum, dout, q, k, v, lse);
  else backward<T, 128>(s, a, dq, dk, dv, dsum, dout, q, k, v, lse);
}

#define INSTANTIATE(T)                                                                          \
  template void attention_forward<T>(cudaStream_t, const AttentionShape&, T*, float*, const T*, \
                                     const T*, const T*, AttentionKernels);                     \
  template void attention_backward<T>(cudaStream_t, const AttentionShape&, T*, T*, T*, float*,  \
                                      const T*, const T*, const T*, const T*, const T*,        \
                                      const float*, AttentionKernels);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
