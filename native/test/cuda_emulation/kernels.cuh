// Stands in for native/cuda/kernels.cuh in the CPU emulation: the types and helpers
// attention_tc.cu uses, on the host.
#pragma once
#include "cuda_emulation.h"

namespace herd::cuda {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
using bf16 = emu::bf16_t;
using cudaStream_t = void*;

inline float to_float(float x) { return x; }
inline float to_float(bf16 x) { return emu::to_f(x); }
template <class T>
T from_float(float x);
template <>
inline float from_float<float>(float x) { return x; }
template <>
inline bf16 from_float<bf16>(float x) { return emu::from_f(x); }
inline int ceil_div(size_t a, size_t b) { return int((a + b - 1) / b); }

struct AttentionShape {
  int B, T, n_heads, n_kv_heads, head_dim, qs, kvs, os;
};

}  // namespace herd::cuda
