// Stands in for <mma.h> (nvcuda::wmma) in the CPU emulation (cuda_runtime.h), by its
// documented semantics: a fragment is a 16×16 tile, here held whole by every lane (the real
// register layout is opaque and native/cuda never depends on it); row_major element (i, j)
// of a matrix in memory sits at p[i·ldm + j], col_major at p[j·ldm + i]. Every operation is
// warp-wide, as on the hardware: the warp's lanes meet, and the last one to arrive does the
// work once for all of them (loads, products and stores would otherwise be computed 32
// times). Each call checks what the hardware requires: every lane passes the same pointer
// and ldm, pointers 32-byte aligned into shared memory, ldm a multiple of 16 bytes.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "cuda_runtime.h"

namespace nvcuda::wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  float v[16][16];
};
using Accumulator = fragment<accumulator, 16, 16, 16, float>;

namespace detail {

inline void require(bool ok, const char* what) {
  if (!ok) emu::fail((std::string("wmma: ") + what).c_str());
}

// What a lane brings to a load or a store.
struct Access {
  float (*tile)[16];  // the lane's fragment
  const void* p;
  unsigned ldm;
  bool rows;  // row-major in memory
};

inline void check_access(void* const* args, uint32_t lanes, unsigned element_bytes) {
  const Access* first = nullptr;
  for (int l = 0; l < 32; l++) {
    if (!(lanes >> l & 1)) continue;
    const auto* a = static_cast<const Access*>(args[l]);
    if (!first) first = a;
    require(a->p == first->p && a->ldm == first->ldm && a->rows == first->rows,
            "lanes of a warp pass different pointers or ldm");
  }
  require(lanes == 0xffffffffu, "a warp-wide operation without all 32 lanes");
  require(reinterpret_cast<uintptr_t>(first->p) % 32 == 0, "pointer not 32-byte aligned");
  require(first->ldm * element_bytes % 16 == 0, "ldm not a multiple of 16 bytes");
  const size_t extent = (15 * size_t(first->ldm) + 16) * element_bytes;
  require(emu::in_shared(first->p, extent), "a tile outside the block's shared memory");
}

template <class T>
float element(const void* p, size_t e) {
  if constexpr (std::is_same_v<T, float>) return static_cast<const float*>(p)[e];
  else return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[e]);
}

template <class T>
void load(void* const* args, uint32_t lanes) {
  check_access(args, lanes, sizeof(T));
  const auto* a = static_cast<const Access*>(args[0]);
  float t[16][16];
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++)
      t[i][j] = element<T>(a->p, a->rows ? size_t(i) * a->ldm + j : size_t(j) * a->ldm + i);
  for (int l = 0; l < 32; l++) std::memcpy(static_cast<const Access*>(args[l])->tile, t, sizeof t);
}

}  // namespace detail

inline void fill_fragment(Accumulator& f, float x) {
  struct Fill {
    Accumulator* f;
    float x;
  } me{&f, x};
  emu::warp_collective(&me, [](void* const* args, uint32_t lanes) {
    detail::require(lanes == 0xffffffffu, "a warp-wide operation without all 32 lanes");
    const float x0 = static_cast<Fill*>(args[0])->x;
    for (int l = 0; l < 32; l++) {
      auto* a = static_cast<Fill*>(args[l]);
      detail::require(std::memcmp(&a->x, &x0, sizeof x0) == 0, "lanes fill with different values");
      for (auto& row : a->f->v)
        for (auto& e : row) e = x0;
    }
  });
}

template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>& f, const __nv_bfloat16* p,
                      unsigned ldm) {
  detail::Access me{f.v, p, ldm, std::is_same_v<Layout, row_major>};
  emu::warp_collective(&me, detail::load<__nv_bfloat16>);
}

inline void load_matrix_sync(Accumulator& f, const float* p, unsigned ldm, layout_t layout) {
  detail::Access me{f.v, p, ldm, layout == mem_row_major};
  emu::warp_collective(&me, detail::load<float>);
}

// Every lane holds the same tile (checked), written once.
inline void store_matrix_sync(float* p, const Accumulator& f, unsigned ldm, layout_t layout) {
  detail::Access me{const_cast<float(*)[16]>(f.v), p, ldm, layout == mem_row_major};
  emu::warp_collective(&me, [](void* const* args, uint32_t lanes) {
    detail::check_access(args, lanes, 4);
    const auto* a = static_cast<const detail::Access*>(args[0]);
    for (int l = 1; l < 32; l++)
      detail::require(std::memcmp(static_cast<const detail::Access*>(args[l])->tile, a->tile,
                                  sizeof(float) * 256) == 0,
                      "lanes store different fragments");
    auto* out = static_cast<float*>(const_cast<void*>(a->p));
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 16; j++)
        out[a->rows ? size_t(i) * a->ldm + j : size_t(j) * a->ldm + i] = a->tile[i][j];
  });
}

// d = a·b + c with fp32 accumulation of the bf16 products (each exact in fp32), computed once
// from lane 0's fragments (every lane's are the same: they come from warp-wide loads and
// fills) and given to every lane's d.
template <class LA, class LB>
void mma_sync(Accumulator& d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB>& b, const Accumulator& c) {
  struct Mma {
    float (*d)[16];
    const float (*a)[16];
    const float (*b)[16];
    const float (*c)[16];
  } me{d.v, a.v, b.v, c.v};
  emu::warp_collective(&me, [](void* const* args, uint32_t lanes) {
    detail::require(lanes == 0xffffffffu, "a warp-wide operation without all 32 lanes");
    const auto* m = static_cast<const Mma*>(args[0]);
    float t[16][16];
    for (int i = 0; i < 16; i++)
      for (int n = 0; n < 16; n++) {
        float s = m->c[i][n];
        for (int k = 0; k < 16; k++) s += m->a[i][k] * m->b[k][n];
        t[i][n] = s;
      }
    for (int l = 0; l < 32; l++) std::memcpy(static_cast<const Mma*>(args[l])->d, t, sizeof t);
  });
}

}  // namespace nvcuda::wmma
