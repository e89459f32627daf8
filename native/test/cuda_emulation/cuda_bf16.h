// Stands in for <cuda_bf16.h> in the CPU emulation (cuda_runtime.h): bf16 as its 16 bits,
// converted from float by rounding to nearest even, as __float2bfloat16_rn does.
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t __x;
};

inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = uint32_t(b.__x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return {0x7FFF};  // NaN: CUDA's canonical one
  return {uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16)};
}
