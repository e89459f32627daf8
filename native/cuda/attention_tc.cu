// Causal flash attention on tensor cores, for bf16 storage (sm_80 and sm_90).
//
// The algorithm, the outputs and the block structure are attention.cu's (FlashAttention-2;
// read that file first): a forward block per 64 queries, a backward dK/dV block per 64 keys
// (summing over every query of its head group, heads in order) and a dQ block per 64
// queries, so no sum needs atomics. What changes is where the tile products run: Q·Kᵀ, P·V,
// dO·Vᵀ, Pᵀ·dO, dSᵀ·Q and dS·K are nvcuda::wmma 16×16×16 products with bf16 operands and
// fp32 accumulation.
//
// A fragment's register layout is opaque (which lane holds which row is unspecified), so
// nothing that depends on the row is done on fragments: a product's fragments are stored to
// an fp32 tile in shared memory, the whole block passes over that tile row by row in fp32
// (causal mask, running max and normaliser, P = exp(S·scale − lse), dS = P∘(dP − D)·scale,
// the forward's rescaling of O), and writes P or dS rounded to bf16 as the next product's
// operand. Accumulators that no row-wise factor touches (dK, dV, dQ) stay in fragments
// across tiles; the forward's O is rescaled per row whenever the row maximum grows, so it
// lives in shared memory as fp32 and each product loads it into fragments and stores it back.
//
// Every kernel: 256 threads = 8 warps, tiles of 64 queries × 64 keys. Who does what:
//   64×64 products (S, dP):    warp w: rows 16·(w/2)…+16, columns 32·(w%2)…+32 (2 fragments)
//   64×HD products (O, dQ, dK, dV): warp w: rows 16·(w/2)…+16, columns HD/2·(w%2)…+HD/2
//                              (HD/32 fragments)
//   row passes: four threads per row, r = thread/4, columns j ≡ thread mod 4
// Between phases a __syncthreads(): phases read what other warps wrote.
//
// Shared memory rows are padded (bf16 [64][HD+8], fp32 [64][64+4] and [64][HD+4]) so that
// consecutive rows start on different banks. WMMA wants the leading dimension a multiple of
// 16 bytes (8 bf16, 4 floats) and every fragment pointer 32-byte aligned: fragments start at
// rows that are multiples of 16 (16 padded rows are a multiple of 32 bytes) and at columns
// that are multiples of 16 (32 or 64 bytes), and every region below starts at a multiple of
// 128 bytes of the 128-byte-aligned dynamic shared memory.
#include <mma.h>

#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "attention.cuh"

namespace herd::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kTile = 64;      // queries per tile, keys per tile
constexpr int kThreads = 256;  // 8 warps
constexpr int kLdS = kTile + 4;  // fp32 [64][64] tiles (S, dP)
constexpr int kLdP = kTile + 8;  // bf16 [64][64] tiles (P, dS)
template <int HD>
constexpr int kLdX = HD + 8;  // bf16 [64][HD] tiles (Q, K, V, dO)
template <int HD>
constexpr int kLdO = HD + 4;  // fp32 [64][HD] tiles (O, and the staging of dQ, dK, dV)

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragAt = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;  // Aᵀ
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // Bᵀ
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// ---- shared memory: one layout per kernel, byte offsets, read by the kernel and the launch.
constexpr size_t round128(size_t n) { return (n + 127) / 128 * 128; }
template <int HD>
constexpr size_t kBytesX = round128(size_t(kTile) * kLdX<HD> * 2);  // bf16 [64][HD+8]
constexpr size_t kBytesS = round128(size_t(kTile) * kLdS * 4);       // fp32 [64][68]
constexpr size_t kBytesP = round128(size_t(kTile) * kLdP * 2);       // bf16 [64][72]
template <int HD>
constexpr size_t kBytesO = round128(size_t(kTile) * kLdO<HD> * 4);   // fp32 [64][HD+4]
constexpr size_t kBytesRow = round128(size_t(kTile) * 4);            // fp32 [64]
// sm_80's opt-in limit per block (sm_90 allows 227 KB).
constexpr size_t kMaxShared = 163 * 1024;

template <int HD>
struct ForwardLayout {
  static constexpr size_t q = 0;                    // Q  bf16 [64][HD+8]
  static constexpr size_t k = q + kBytesX<HD>;      // K  bf16 [64][HD+8]
  static constexpr size_t v = k + kBytesX<HD>;      // V  bf16 [64][HD+8]
  static constexpr size_t s = v + kBytesX<HD>;      // S  fp32 [64][68], Q·Kᵀ unscaled
  static constexpr size_t p = s + kBytesS;          // P  bf16 [64][72]
  static constexpr size_t o = p + kBytesP;          // O  fp32 [64][HD+4], unnormalised
  static constexpr size_t inv_l = o + kBytesO<HD>;  // 1/l per row, fp32 [64]
  static constexpr size_t bytes = inv_l + kBytesRow;
  static_assert(bytes <= kMaxShared, "forward tile does not fit sm_80's shared memory");
};

// Both backward kernels: the four operand tiles (the block's own two, loaded once, and the two
// that change per step), the two scores, P (dK/dV only) and dS, and the rows' lse and D.
// After the loop the fp32 staging of the results reuses regions no longer read: `s` and `dp`
// (adjacent) hold one [64][HD+4] tile, `x2` and `x3` (adjacent) another.
template <int HD>
struct BackwardLayout {
  static constexpr size_t x0 = 0;                 // dK/dV: K;  dQ: Q      bf16 [64][HD+8]
  static constexpr size_t x1 = x0 + kBytesX<HD>;  // dK/dV: V;  dQ: dO     bf16 [64][HD+8]
  static constexpr size_t x2 = x1 + kBytesX<HD>;  // dK/dV: Q;  dQ: K      bf16 [64][HD+8]
  static constexpr size_t x3 = x2 + kBytesX<HD>;  // dK/dV: dO; dQ: V      bf16 [64][HD+8]
  static constexpr size_t s = x3 + kBytesX<HD>;   // S  = Q·Kᵀ  fp32 [64][68]
  static constexpr size_t dp = s + kBytesS;       // dP = dO·Vᵀ fp32 [64][68]
  static constexpr size_t p = dp + kBytesS;       // P  bf16 [64][72]
  static constexpr size_t ds = p + kBytesP;       // dS bf16 [64][72]
  static constexpr size_t lse = ds + kBytesP;     // lse per query row, fp32 [64]
  static constexpr size_t d = lse + kBytesRow;    // D per query row, fp32 [64]
  static constexpr size_t bytes = d + kBytesRow;
  static_assert(2 * kBytesS >= kBytesO<HD> && 2 * kBytesX<HD> >= kBytesO<HD>,
                "the result staging does not fit the regions it reuses");
  static_assert(bytes <= kMaxShared, "backward tiles do not fit sm_80's shared memory");
};

template <class X>
__device__ __forceinline__ X* region(unsigned char* shared, size_t offset) {
  return reinterpret_cast<X*>(shared + offset);
}

// ---- tiles between global and shared memory

// Copies rows [row0, row0 + 64) of one head (columns col…col+HD of rows with `stride`
// elements) into a bf16 tile [64][HD+8], 16 bytes (8 elements) per load; rows past the
// sequence's end become zeros, never garbage (a masked 0 times a NaN would still be NaN).
// The host checked that rows start 16-byte aligned.
template <int HD>
__device__ void load_tile(bf16* tile, const bf16* src, int stride, int b, int Tn, int row0,
                          int col) {
  constexpr int chunks = HD / 8;  // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < kTile * chunks; idx += blockDim.x) {
    const int r = idx / chunks, c = idx % chunks, pos = row0 + r;
    uint4 x = make_uint4(0u, 0u, 0u, 0u);
    if (pos < Tn)
      x = *reinterpret_cast<const uint4*>(src + size_t(b * Tn + pos) * stride + col + 8 * c);
    *reinterpret_cast<uint4*>(tile + r * kLdX<HD> + 8 * c) = x;
  }
}

// The rows' lse and D = rowsum(dO∘O) of queries [i0, i0 + 64) of head h; 0 past the end
// (those rows are masked anyway).
__device__ void load_row_stats(float* lse_s, float* d_s, const float* lse, const float* dsum,
                               const AttentionShape& a, int b, int h, int i0) {
  for (int i = threadIdx.x; i < kTile; i += blockDim.x) {
    const int pos = i0 + i;
    const size_t at = (size_t(b) * a.n_heads + h) * a.T + pos;
    lse_s[i] = pos < a.T ? lse[at] : 0.0f;
    d_s[i] = pos < a.T ? dsum[at] : 0.0f;
  }
}

// Writes an fp32 tile [64][HD+4] (row r times row_factor[r] when given) to rows
// [row0, row0 + 64) of one head of dst as bf16, skipping rows past the sequence's end.
template <int HD>
__device__ void store_tile(bf16* dst, int stride, int b, int Tn, int row0, int col,
                           const float* tile, const float* row_factor) {
  for (int idx = threadIdx.x; idx < kTile * HD; idx += blockDim.x) {
    const int r = idx / HD, x = idx % HD, pos = row0 + r;
    if (pos >= Tn) continue;
    const float f = row_factor ? row_factor[r] : 1.0f;
    dst[size_t(b * Tn + pos) * stride + col + x] = from_float<bf16>(tile[r * kLdO<HD> + x] * f);
  }
}

// ---- tile products on tensor cores (each a whole-block phase: every warp takes its part)

// C = A·Bᵀ for two bf16 tiles [64][HD+8] whose rows are both indexed by the product's rows
// and columns (S = Q·Kᵀ, dP = dO·Vᵀ: C[i][j] = Σₓ A[i][x]·B[j][x]), into the fp32 tile
// C [64][68]. Bᵀ is B read column-major: element (x, j) of Bᵀ sits at B[j·ld + x].
template <int HD>
__device__ void product_abt(float* C, const bf16* A, const bf16* B) {
  constexpr int ld = kLdX<HD>;
  const int warp = threadIdx.x / 32, r0 = 16 * (warp / 2), c0 = 32 * (warp % 2);
  FragC c[2];
  wmma::fill_fragment(c[0], 0.0f);
  wmma::fill_fragment(c[1], 0.0f);
#pragma unroll
  for (int x = 0; x < HD; x += 16) {
    FragA a;
    wmma::load_matrix_sync(a, A + r0 * ld + x, ld);
#pragma unroll
    for (int n = 0; n < 2; n++) {
      FragBt bt;
      wmma::load_matrix_sync(bt, B + (c0 + 16 * n) * ld + x, ld);
      wmma::mma_sync(c[n], a, bt, c[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < 2; n++)
    wmma::store_matrix_sync(C + r0 * kLdS + c0 + 16 * n, c[n], kLdS, wmma::mem_row_major);
}

// This warp's output fragments of a 64×HD result: rows 16·(w/2)…, columns HD/2·(w%2) + 16·n.
__device__ __forceinline__ int out_row0() { return 16 * (threadIdx.x / 32 / 2); }
template <int HD>
__device__ __forceinline__ int out_col0() {
  return HD / 2 * (threadIdx.x / 32 % 2);
}

// acc += A·B over one 64-key (or 64-query) step, for this warp's output fragments.
// A is a bf16 [64][72] tile, P or dS (rows queries, columns keys), taken as it is
// (kTransposeA false: O += P·V, dQ += dS·K, output rows are queries) or transposed
// (kTransposeA true: dV += Pᵀ·dO, dK += dSᵀ·Q, output rows are keys). B is a bf16 tile
// [64][HD+8] whose rows are the summed index (V, K: keys; dO, Q: queries).
// Aᵀ is A read column-major: element (row m, column k) of Aᵀ sits at A[k·kLdP + m].
template <int HD, bool kTransposeA>
__device__ void product_ab(FragC (&acc)[HD / 32], const bf16* A, const bf16* B) {
  constexpr int ld = kLdX<HD>;
  const int r0 = out_row0(), c0 = out_col0<HD>();
#pragma unroll
  for (int k = 0; k < kTile; k += 16) {
    std::conditional_t<kTransposeA, FragAt, FragA> a;
    if constexpr (kTransposeA) wmma::load_matrix_sync(a, A + k * kLdP + r0, kLdP);
    else wmma::load_matrix_sync(a, A + r0 * kLdP + k, kLdP);
#pragma unroll
    for (int n = 0; n < HD / 32; n++) {
      FragB bf;
      wmma::load_matrix_sync(bf, B + k * ld + c0 + 16 * n, ld);
      wmma::mma_sync(acc[n], a, bf, acc[n]);
    }
  }
}

// This warp's output fragments to or from an fp32 tile [64][HD+4].
template <int HD>
__device__ void load_out(FragC (&acc)[HD / 32], const float* tile) {
  const int r0 = out_row0(), c0 = out_col0<HD>();
#pragma unroll
  for (int n = 0; n < HD / 32; n++)
    wmma::load_matrix_sync(acc[n], tile + r0 * kLdO<HD> + c0 + 16 * n, kLdO<HD>,
                           wmma::mem_row_major);
}
template <int HD>
__device__ void store_out(float* tile, const FragC (&acc)[HD / 32]) {
  const int r0 = out_row0(), c0 = out_col0<HD>();
#pragma unroll
  for (int n = 0; n < HD / 32; n++)
    wmma::store_matrix_sync(tile + r0 * kLdO<HD> + c0 + 16 * n, acc[n], kLdO<HD>,
                            wmma::mem_row_major);
}
template <int HD>
__device__ void zero_out(FragC (&acc)[HD / 32]) {
#pragma unroll
  for (int n = 0; n < HD / 32; n++) wmma::fill_fragment(acc[n], 0.0f);
}

// ---- row passes (fp32)

// Backward, query row r (absolute position i) of a tile against keys j0…j0+63, this thread's
// 16 columns j ≡ sub mod 4:
//   P = exp(S·scale − lse),  dS = P∘(dP − D)·scale,
// both 0 where the query does not see the key (attention_sees) or is past the end. Rounded to
// bf16 as the next products' operands; P is kept only when wanted (dK/dV), dS always.
__device__ void gradient_row(const AttentionShape& a, int b, bf16* P, bf16* dS, const float* S,
                             const float* dP, int r, int sub, int i, int j0, float row_lse,
                             float row_d, float scale) {
#pragma unroll
  for (int jj = 0; jj < kTile / 4; jj++) {
    const int j = sub + 4 * jj;
    float p = 0.0f, ds = 0.0f;
    if (i < a.T && attention_sees(a, b, i, j0 + j)) {
      p = expf(S[r * kLdS + j] * scale - row_lse);
      ds = p * (dP[r * kLdS + j] - row_d) * scale;
    }
    if (P) P[r * kLdP + j] = from_float<bf16>(p);
    dS[r * kLdP + j] = from_float<bf16>(ds);
  }
}

// ---- kernels

// Forward: one block per (64 queries, head, batch row), walking the key tiles at or before
// its queries with online softmax, as attention_forward_kernel.
template <int HD>
__global__ void __launch_bounds__(kThreads)
attention_forward_tc_kernel(AttentionShape a, bf16* out, float* lse, const bf16* q, const bf16* k,
                            const bf16* v) {
  using L = ForwardLayout<HD>;
  extern __shared__ __align__(128) unsigned char smem_tc[];
  bf16* Qs = region<bf16>(smem_tc, L::q);
  bf16* Ks = region<bf16>(smem_tc, L::k);
  bf16* Vs = region<bf16>(smem_tc, L::v);
  float* S = region<float>(smem_tc, L::s);
  bf16* P = region<bf16>(smem_tc, L::p);
  float* O = region<float>(smem_tc, L::o);
  float* inv_l = region<float>(smem_tc, L::inv_l);
  const int i0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (a.n_heads / a.n_kv_heads);
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;  // row pass: row r, columns ≡ sub
  const float scale = rsqrtf(float(HD));

  load_tile<HD>(Qs, q, a.qs, b, a.T, i0, h * HD);
  // Each thread zeroes the part of O its row pass rescales (the first rescale multiplies by
  // 0, but shared memory starts as garbage, maybe NaN).
  for (int x = sub; x < HD; x += 4) O[r * kLdO<HD> + x] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // row r's running max of S·scale and Σ exp(S·scale − m)

  for (int j0 = 0; j0 <= i0 && j0 < a.T; j0 += kTile) {
    __syncthreads();  // the previous tile's K, V and P are no longer read (and Q is loaded)
    load_tile<HD>(Ks, k, a.kvs, b, a.T, j0, kvh * HD);
    load_tile<HD>(Vs, v, a.kvs, b, a.T, j0, kvh * HD);
    __syncthreads();
    product_abt<HD>(S, Qs, Ks);  // S = Q·Kᵀ
    __syncthreads();
    // Row pass: the causal mask (keys past the end, keys of an earlier packed example) set
    // scores to −inf. While every key so far is masked the max is −inf and the exponentials
    // use 0 instead (p = 0, l = 0); the query's own key is always visible, so l ends > 0.
    float s[kTile / 4], tile_max = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kTile / 4; jj++) {
      const int j = sub + 4 * jj;
      const bool visible = attention_sees(a, b, i0 + r, j0 + j);
      s[jj] = visible ? S[r * kLdS + j] * scale : -INFINITY;
      tile_max = fmaxf(tile_max, s[jj]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    float sum = 0.0f;
#pragma unroll
    for (int jj = 0; jj < kTile / 4; jj++) {
      const float p = expf(s[jj] - m_use);  // exp(−inf) = 0 for masked keys
      P[r * kLdP + sub + 4 * jj] = from_float<bf16>(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float correction = expf(m - m_use);  // 0 on the first tile (m = −inf)
    l = l * correction + sum;
    m = m_new;
    for (int x = sub; x < HD; x += 4) O[r * kLdO<HD> + x] *= correction;
    __syncthreads();  // P is complete and O rescaled: the product reads both across rows
    FragC acc[HD / 32];
    load_out<HD>(acc, O);
    product_ab<HD, false>(acc, P, Vs);  // O += P·V
    store_out<HD>(O, acc);
  }
  if (sub == 0) {
    inv_l[r] = 1.0f / l;  // l ≥ 1: the max's own term is exp(0)
    if (i0 + r < a.T) lse[(size_t(b) * a.n_heads + h) * a.T + i0 + r] = m + logf(l);
  }
  __syncthreads();  // every warp's last P·V is in O, and inv_l is written
  store_tile<HD>(out, a.os, b, a.T, i0, h * HD, O, inv_l);
}

// dK and dV of one key tile, summed over the queries of every head in its group (heads in
// order, then query tiles in order: a fixed order, no atomics), as attention_dkdv_kernel.
template <int HD>
__global__ void __launch_bounds__(kThreads)
attention_dkdv_tc_kernel(AttentionShape a, bf16* dk, bf16* dv, const float* dsum,
                         const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                         const float* lse) {
  using L = BackwardLayout<HD>;
  extern __shared__ __align__(128) unsigned char smem_tc[];
  bf16* Ks = region<bf16>(smem_tc, L::x0);
  bf16* Vs = region<bf16>(smem_tc, L::x1);
  bf16* Qs = region<bf16>(smem_tc, L::x2);
  bf16* dOs = region<bf16>(smem_tc, L::x3);
  float* S = region<float>(smem_tc, L::s);
  float* dP = region<float>(smem_tc, L::dp);
  bf16* P = region<bf16>(smem_tc, L::p);
  bf16* dS = region<bf16>(smem_tc, L::ds);
  float* lse_s = region<float>(smem_tc, L::lse);
  float* d_s = region<float>(smem_tc, L::d);
  const int j0 = blockIdx.x * kTile, kvh = blockIdx.y, b = blockIdx.z;
  const int group = a.n_heads / a.n_kv_heads;
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;  // row pass: query row r
  const float scale = rsqrtf(float(HD));

  load_tile<HD>(Ks, k, a.kvs, b, a.T, j0, kvh * HD);
  load_tile<HD>(Vs, v, a.kvs, b, a.T, j0, kvh * HD);
  FragC dk_acc[HD / 32], dv_acc[HD / 32];  // rows: this warp's 16 keys
  zero_out<HD>(dk_acc);
  zero_out<HD>(dv_acc);

  for (int h = kvh * group; h < (kvh + 1) * group; h++)
    // Queries before j0 see none of these keys; tiles are aligned, so start at the tile j0.
    for (int i0 = j0; i0 < a.T; i0 += kTile) {
      __syncthreads();  // the previous step's Q, dO, P, dS, lse and D are no longer read
      load_tile<HD>(Qs, q, a.qs, b, a.T, i0, h * HD);
      load_tile<HD>(dOs, dout, a.os, b, a.T, i0, h * HD);
      load_row_stats(lse_s, d_s, lse, dsum, a, b, h, i0);
      __syncthreads();
      product_abt<HD>(S, Qs, Ks);    // S = Q·Kᵀ
      product_abt<HD>(dP, dOs, Vs);  // dP = dO·Vᵀ
      __syncthreads();
      gradient_row(a, b, P, dS, S, dP, r, sub, i0 + r, j0, lse_s[r], d_s[r], scale);
      __syncthreads();  // P and dS are complete: the products read them across rows
      product_ab<HD, true>(dv_acc, P, dOs);  // dV += Pᵀ·dO
      product_ab<HD, true>(dk_acc, dS, Qs);  // dK += dSᵀ·Q
    }
  // Results through fp32 staging: dV over S and dP, dK over Q and dO.
  float* dv_stage = S;
  float* dk_stage = reinterpret_cast<float*>(Qs);
  __syncthreads();  // every warp's last products have read Q and dO
  store_out<HD>(dv_stage, dv_acc);
  store_out<HD>(dk_stage, dk_acc);
  __syncthreads();
  store_tile<HD>(dv, a.kvs, b, a.T, j0, kvh * HD, dv_stage, nullptr);
  store_tile<HD>(dk, a.kvs, b, a.T, j0, kvh * HD, dk_stage, nullptr);
}

// dQ of one query tile, summed over the key tiles at or before it, as attention_dq_kernel.
template <int HD>
__global__ void __launch_bounds__(kThreads)
attention_dq_tc_kernel(AttentionShape a, bf16* dq, const float* dsum, const bf16* dout,
                       const bf16* q, const bf16* k, const bf16* v, const float* lse) {
  using L = BackwardLayout<HD>;
  extern __shared__ __align__(128) unsigned char smem_tc[];
  bf16* Qs = region<bf16>(smem_tc, L::x0);
  bf16* dOs = region<bf16>(smem_tc, L::x1);
  bf16* Ks = region<bf16>(smem_tc, L::x2);
  bf16* Vs = region<bf16>(smem_tc, L::x3);
  float* S = region<float>(smem_tc, L::s);
  float* dP = region<float>(smem_tc, L::dp);
  bf16* dS = region<bf16>(smem_tc, L::ds);
  float* lse_s = region<float>(smem_tc, L::lse);
  float* d_s = region<float>(smem_tc, L::d);
  const int i0 = blockIdx.x * kTile, h = blockIdx.y, b = blockIdx.z;
  const int kvh = h / (a.n_heads / a.n_kv_heads);
  const int r = threadIdx.x / 4, sub = threadIdx.x % 4;  // row pass: query row r
  const float scale = rsqrtf(float(HD));

  load_tile<HD>(Qs, q, a.qs, b, a.T, i0, h * HD);
  load_tile<HD>(dOs, dout, a.os, b, a.T, i0, h * HD);
  load_row_stats(lse_s, d_s, lse, dsum, a, b, h, i0);
  FragC dq_acc[HD / 32];  // rows: this warp's 16 queries
  zero_out<HD>(dq_acc);

  for (int j0 = 0; j0 <= i0 && j0 < a.T; j0 += kTile) {
    __syncthreads();  // the previous tile's K, V and dS are no longer read (and Q, dO loaded)
    load_tile<HD>(Ks, k, a.kvs, b, a.T, j0, kvh * HD);
    load_tile<HD>(Vs, v, a.kvs, b, a.T, j0, kvh * HD);
    __syncthreads();
    product_abt<HD>(S, Qs, Ks);    // S = Q·Kᵀ
    product_abt<HD>(dP, dOs, Vs);  // dP = dO·Vᵀ
    __syncthreads();
    gradient_row(a, b, nullptr, dS, S, dP, r, sub, i0 + r, j0, lse_s[r], d_s[r], scale);
    __syncthreads();  // dS is complete: the product reads it across rows
    product_ab<HD, false>(dq_acc, dS, Ks);  // dQ += dS·K
  }
  // The result through fp32 staging over S and dP. No barrier before the stores: S and dP
  // were last read by the final row pass, which the loop's last barrier already separates
  // from here (the last product reads dS and K, which the staging does not touch).
  float* dq_stage = S;
  store_out<HD>(dq_stage, dq_acc);
  __syncthreads();
  store_tile<HD>(dq, a.qs, b, a.T, i0, h * HD, dq_stage, nullptr);
}

// The tiles are loaded 16 bytes (8 bf16) at a time: each row read must start 16-byte aligned.
void check_alignment(const AttentionShape& a, std::initializer_list<const void*> inputs) {
  if (a.qs % 8 || a.kvs % 8 || a.os % 8)
    throw Error("attention (tensor cores): row strides must be multiples of 8 elements");
  for (const void* p : inputs)
    if (reinterpret_cast<uintptr_t>(p) % 16)
      throw Error("attention (tensor cores): inputs must be 16-byte aligned");
}

template <int HD>
void forward_tc(cudaStream_t s, const AttentionShape& a, bf16* out, float* lse, const bf16* q,
                const bf16* k, const bf16* v) {
  launch(attention_forward_tc_kernel<HD>, dim3(ceil_div(a.T, kTile), a.n_heads, a.B), kThreads,
         ForwardLayout<HD>::bytes, s, a, out, lse, q, k, v);
}

template <int HD>
void backward_tc(cudaStream_t s, const AttentionShape& a, bf16* dq, bf16* dk, bf16* dv,
                 const float* dsum, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                 const float* lse) {
  const size_t shared = BackwardLayout<HD>::bytes;
  launch(attention_dkdv_tc_kernel<HD>, dim3(ceil_div(a.T, kTile), a.n_kv_heads, a.B), kThreads,
         shared, s, a, dk, dv, dsum, dout, q, k, v, lse);
  launch(attention_dq_tc_kernel<HD>, dim3(ceil_div(a.T, kTile), a.n_heads, a.B), kThreads, shared,
         s, a, dq, dsum, dout, q, k, v, lse);
}

}  // namespace

void attention_forward_tc(cudaStream_t s, const AttentionShape& a, bf16* out, float* lse,
                          const bf16* q, const bf16* k, const bf16* v) {
  check_alignment(a, {q, k, v});
  if (a.head_dim == 64) forward_tc<64>(s, a, out, lse, q, k, v);
  else forward_tc<128>(s, a, out, lse, q, k, v);
}

void attention_backward_tc(cudaStream_t s, const AttentionShape& a, bf16* dq, bf16* dk, bf16* dv,
                           const float* dsum, const bf16* dout, const bf16* q, const bf16* k,
                           const bf16* v, const float* lse) {
  check_alignment(a, {dout, q, k, v});
  if (a.head_dim == 64) backward_tc<64>(s, a, dq, dk, dv, dsum, dout, q, k, v, lse);
  else backward_tc<128>(s, a, dq, dk, dv, dsum, dout, q, k, v, lse);
}

}  // namespace herd::cuda
