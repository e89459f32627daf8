// nvcuda::wmma for the CPU emulation (cuda_emulation.h), by its documented semantics: a
// fragment is a 16×16 tile (every lane of the warp holds all of it here; the real layout is
// opaque and attention_tc.cu never depends on it); row_major element (i, j) of a matrix in
// memory sits at p[i·ldm + j], col_major at p[j·ldm + i]. Each call checks what the hardware
// requires: 32-byte aligned pointers into shared memory, ldm a multiple of 16 bytes.
#pragma once
#include <cstdint>
#include <stdexcept>

#include "cuda_emulation.h"

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

inline void require(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("wmma: ") + what);
}
inline void check_operand(const void* p, unsigned ldm, unsigned element_bytes) {
  require(reinterpret_cast<uintptr_t>(p) % 32 == 0, "pointer not 32-byte aligned");
  require(ldm * element_bytes % 16 == 0, "ldm not a multiple of 16 bytes");
  emu::check_shared(p);
}

inline void fill_fragment(Accumulator& f, float x) {
  emu::warp_sync();
  for (auto& row : f.v)
    for (auto& e : row) e = x;
}

template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, emu::bf16_t, Layout>& f, const emu::bf16_t* p,
                      unsigned ldm) {
  emu::warp_sync();
  check_operand(p, ldm, 2);
  constexpr bool rows = std::is_same_v<Layout, row_major>;
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) f.v[i][j] = emu::to_f(rows ? p[i * ldm + j] : p[j * ldm + i]);
  emu::warp_sync();
}

inline void load_matrix_sync(Accumulator& f, const float* p, unsigned ldm, layout_t layout) {
  emu::warp_sync();
  check_operand(p, ldm, 4);
  require(layout == mem_row_major, "only row-major accumulators are emulated");
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) f.v[i][j] = p[i * ldm + j];
  emu::warp_sync();
}

// The warp's lanes write the tile between them, as the hardware does.
inline void store_matrix_sync(float* p, const Accumulator& f, unsigned ldm, layout_t layout) {
  emu::warp_sync();
  check_operand(p, ldm, 4);
  require(layout == mem_row_major, "only row-major accumulators are emulated");
  for (int e = emu::lane(); e < 256; e += 32) p[(e / 16) * ldm + e % 16] = f.v[e / 16][e % 16];
  emu::warp_sync();
}

// d = a·b + c with fp32 accumulation of the bf16 products (exact in fp32).
template <class LA, class LB>
void mma_sync(Accumulator& d, const fragment<matrix_a, 16, 16, 16, emu::bf16_t, LA>& a,
              const fragment<matrix_b, 16, 16, 16, emu::bf16_t, LB>& b, const Accumulator& c) {
  emu::warp_sync();
  float t[16][16];
  for (int i = 0; i < 16; i++)
    for (int n = 0; n < 16; n++) {
      float s = c.v[i][n];
      for (int k = 0; k < 16; k++) s += a.v[i][k] * b.v[k][n];
      t[i][n] = s;
    }
  for (int i = 0; i < 16; i++)
    for (int n = 0; n < 16; n++) d.v[i][n] = t[i][n];
}

}  // namespace nvcuda::wmma
