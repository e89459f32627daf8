// A CPU emulation of the little of CUDA that native/cuda/attention_tc.cu uses, so its kernels'
// source runs here: every CUDA thread of a block is a std::thread, __syncthreads() a
// std::barrier over them, a warp's shuffle goes through a shared slot between two warp
// barriers, and blocks run one after another over one shared-memory array filled with NaN
// bytes first (a read of what no thread wrote shows up as NaN in the results). Built with
// -fsanitize=thread, a missing barrier shows up as a data race. It proves the kernels'
// indexing, masking and barriers against the documented semantics; not the hardware, not
// the speed (test/native/attention-emulation.test.ts).
#pragma once
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned a, unsigned b, unsigned c, unsigned d) { return {a, b, c, d}; }
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim{256, 1, 1};
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

namespace emu {

constexpr int kMaxWarps = 8;

// bf16 as its 16 bits, rounded to nearest even as __float2bfloat16 does.
struct bf16_t {
  uint16_t bits;
};
inline float to_f(bf16_t b) {
  const uint32_t u = uint32_t(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline bf16_t from_f(float x) {
  if (std::isnan(x)) return {0x7FC0};
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return {uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16)};
}

// The running block's barriers and shared memory.
inline std::barrier<>* block_barrier = nullptr;
inline std::barrier<>* warp_barrier[kMaxWarps];
inline float shuffle_slots[kMaxWarps][32];
inline unsigned char* shared_memory = nullptr;  // the kernels' extern __shared__ array
inline size_t shared_bytes = 0;

inline int lane() { return threadIdx.x % 32; }
inline void warp_sync() { warp_barrier[threadIdx.x / 32]->arrive_and_wait(); }
inline void check_shared(const void* p) {
  const auto* c = static_cast<const unsigned char*>(p);
  if (c < shared_memory || c >= shared_memory + shared_bytes)
    throw std::runtime_error("a WMMA pointer outside the block's shared memory");
}

}  // namespace emu

inline void __syncthreads() { emu::block_barrier->arrive_and_wait(); }
inline void __syncwarp() { emu::warp_sync(); }
inline float __shfl_xor_sync(unsigned, float v, int mask) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  emu::shuffle_slots[w][l] = v;
  emu::warp_sync();
  const float r = emu::shuffle_slots[w][l ^ mask];
  emu::warp_sync();
  return r;
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__
#define __align__(x)

namespace emu {

inline long launches = 0;

// kernel<<<grid, threads, shared>>>(args...): each block in turn, its threads as std::threads,
// `shared` bytes of `memory` (of `capacity`) its dynamic shared memory.
template <class Kernel, class... Args>
void launch(unsigned char* memory, size_t capacity, Kernel kernel, dim3 grid, int threads,
            size_t shared, Args... args) {
  if (shared > capacity || threads != int(blockDim.x))
    throw std::runtime_error("emulated launch: " + std::to_string(shared) + " bytes of shared memory, " +
                             std::to_string(threads) + " threads");
  launches++;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        std::memset(memory, 0xFF, capacity);  // NaN bytes
        shared_memory = memory;
        shared_bytes = shared;
        std::barrier<> block(threads);
        block_barrier = &block;
        std::vector<std::unique_ptr<std::barrier<>>> warps;
        for (int w = 0; w < threads / 32; w++) {
          warps.push_back(std::make_unique<std::barrier<>>(32));
          warp_barrier[w] = warps.back().get();
        }
        std::vector<std::thread> running;
        for (int t = 0; t < threads; t++)
          running.emplace_back([&, t] {
            threadIdx = dim3(t);
            blockIdx = dim3(x, y, z);
            kernel(args...);
          });
        for (auto& t : running) t.join();
      }
}

}  // namespace emu
