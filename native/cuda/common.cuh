// Shared by the CUDA backend's files: error handling, the two storage types (float and bf16)
// and block-level reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace herd::cuda {

// Errors travel as exceptions inside the library and become a return code plus
// herd_cuda_last_error() at the C API boundary (api.cu).
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw Error(std::string(what) + ": " + cudaGetErrorString(e) + " (" + file + ":" +
                std::to_string(line) + ")");
}
#define CUDA_CHECK(call) ::herd::cuda::check((call), #call, __FILE__, __LINE__)

// The message herd_cuda_last_error() returns, one per thread (api.cu holds it).
void set_last_error(const char* message);

// Runs f at the C API boundary: 0 when it returns, -1 with the exception's message as the
// last error when it throws. No exception crosses into the caller's C code.
template <class F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    set_last_error(e.what());
  } catch (...) {
    set_last_error("unknown error");
  }
  return -1;
}
// After every launch: a bad configuration shows here, not at some later call.
#define LAUNCH_CHECK() ::herd::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

inline int ceil_div(size_t a, size_t b) { return int((a + b - 1) / b); }

// Storage types: activations are float (checks) or bf16 (training); arithmetic is float.
using bf16 = __nv_bfloat16;
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Sum over the block, in a fixed order (warp trees, then warp 0 over the warps' sums), the
// result in every thread. `scratch` holds 32 floats; blockDim.x is a multiple of 32.
__device__ inline float block_sum(float x, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < warps ? scratch[lane] : 0.0f;
  return warp_sum(x);
}
__device__ inline float block_max(float x, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = warp_max(x);
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(x);
}

}  // namespace herd::cuda
