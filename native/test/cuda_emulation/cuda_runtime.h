// Stands in for <cuda_runtime.h> so that native/cuda's sources compile with g++ and run on
// the CPU (there is no GPU here or in CI): the device built-ins the kernels use (threadIdx,
// __syncthreads, warp shuffles, atomicAdd, math), the launch, and the runtime API on host
// memory. test/native/cuda-emulation.test.ts copies the sources, rewrites the three pieces of
// syntax g++ cannot parse (kernel<<<…>>>(…), extern __shared__ and __shared__ declarations;
// see that file), and compiles them with this directory first on the include path.
//
// Execution model (emulation.cc): a launch runs its blocks one after another; a block's CUDA
// threads are fibers on one OS thread, and each fiber runs as far as it can, switching only
// when it must wait: at __syncthreads (a barrier over the block's threads that have not
// exited) and at warp-level operations (__syncwarp, shuffles, WMMA: a barrier over the
// warp's lanes). That order is the most adversarial one for a missing barrier: the threads
// that start first (the lowest in even blocks, the highest in odd ones) run ahead and read
// what the others have not written yet, or overwrite what they have not read yet. Shared
// memory and new device allocations are filled with NaN bytes, so such a read shows up in
// the results. Streams and events keep their order trivially: every call completes before
// it returns. Kernels' memory accesses are not checked (no bounds, no host/device mix-up);
// the runtime's copies, memsets and cuBLASLt's operands are.
//
// What this proves: the kernels' indexing, masking, barriers and host logic, against the
// documented semantics. Not the hardware, its memory model or its speed.
#pragma once
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "cuda_bf16.h"

// ---- kernel syntax

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// __shared__ is deliberately not defined: the test rewrites every declaration, and one it
// missed fails to compile rather than becoming a per-thread local array.

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }

// The running thread's coordinates. Per OS thread; the scheduler sets threadIdx on every
// switch between fibers.
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---- runtime types (values as in CUDA 12's driver_types.h)

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventDisableTiming = 2;
using cudaStream_t = struct CUstream_st*;
using cudaEvent_t = struct CUevent_st*;

// ---- runtime API (emulation.cc)

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);

cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);

cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventDestroy(cudaEvent_t e);

namespace emu {
// sm_80's opt-in limit of dynamic shared memory per block (sm_90's is larger): the backend
// targets both, so the smaller one binds.
constexpr size_t kMaxDynamicShared = 163 * 1024;
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attribute, int value);
}  // namespace emu

template <class Kernel>
cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attribute, int value) {
  return emu::func_set_attribute(reinterpret_cast<const void*>(kernel), attribute, value);
}

// ---- device side (emulation.cc)

namespace emu {

// kernel<<<grid, block, shared, stream>>>(args…) becomes
// emu::Launch(grid, block, shared, stream).run([&] { kernel(args…); }): every CUDA thread
// calls the lambda, which calls the kernel with its own copies of the arguments. A bad
// configuration runs nothing and is reported by cudaGetLastError(), as on a GPU.
void launch(dim3 grid, dim3 block, size_t shared, void (*body)(void*), void* arg);
struct Launch {
  dim3 grid, block;
  size_t shared;
  Launch(dim3 g, dim3 b, size_t bytes = 0, cudaStream_t = nullptr)
      : grid(g), block(b), shared(bytes) {}
  template <class F>
  void run(F&& body) {
    launch(grid, block, shared, [](void* f) { (*static_cast<F*>(f))(); }, &body);
  }
};
inline long launches = 0;  // counted by launch(), for tests

void sync_block();  // __syncthreads
// A warp-level operation: every live lane of the calling thread's warp posts `args` (on its
// own stack); the last lane to arrive calls op(args by lane, mask of the posting lanes), then
// all of them go on. Lanes of one warp at different operations are an error.
using WarpOp = void (*)(void* const* args, uint32_t lanes);
void warp_collective(void* args, WarpOp op);
inline int lane() {
  return int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
}
[[noreturn]] void fail(const char* what);

// Shared memory of the running block: `extern __shared__ T name[]` becomes
// `T* name = emu::dynamic_shared<T>()`, and `__shared__ T name[N]` becomes
// `auto& name = emu::static_shared<T[N]>([] {})` (the lambda's type names the declaration).
unsigned char* dynamic_shared_base();
void* allocate_static_shared(size_t bytes, size_t align);
uint64_t block_serial();  // changes with every block run on this OS thread
bool in_shared(const void* p, size_t bytes);
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(dynamic_shared_base());
}
template <class T, class Key>
T& static_shared(Key) {
  static thread_local T* p = nullptr;
  static thread_local uint64_t serial = 0;
  if (serial != block_serial()) {
    p = static_cast<T*>(allocate_static_shared(sizeof(T), alignof(T)));
    serial = block_serial();
  }
  return *p;
}

// A shuffle: lane reads `value` of lane source(lane); a source that is not taking part gives
// NaN bits (undefined on the hardware).
struct Shuffle {
  uint64_t value, result;
  int source;
  uint32_t mask;
};
uint64_t shuffle(uint64_t value, int source, uint32_t mask);

template <class T>
T shuffle_as(T v, int source, uint32_t mask) {
  static_assert(sizeof(T) <= 8);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(bits, source, mask);
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace emu

inline void __syncthreads() { emu::sync_block(); }
void __syncwarp(unsigned mask = 0xffffffffu);
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int l = emu::lane();
  return emu::shuffle_as(v, (l & ~(width - 1)) + src % width, mask);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int l = emu::lane(), s = l ^ lane_mask;
  return emu::shuffle_as(v, (s & ~(width - 1)) == (l & ~(width - 1)) ? s : l, mask);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int l = emu::lane(), s = l + int(delta);
  return emu::shuffle_as(v, (s & ~(width - 1)) == (l & ~(width - 1)) ? s : l, mask);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int l = emu::lane(), s = l - int(delta);
  return emu::shuffle_as(v, s >= (l & ~(width - 1)) ? s : l, mask);
}

// Real atomics, though one OS thread runs all blocks: cheap, and right if that changes.
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline double atomicAdd(double* p, double v) { return std::atomic_ref<double>(*p).fetch_add(v); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  return std::atomic_ref<unsigned>(*p).fetch_add(v);
}

// Device math: CUDA's overloaded min/max and the float intrinsics (the fast ones, __expf,
// are the accurate ones here: the hardware's error bound is not emulated).
template <class T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <class T>
T max(T a, T b) {
  return a < b ? b : a;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
