// Stands in for native/cuda/attention.cuh in the CPU emulation: launches run on
// emu::launch, and the kernels' dynamic shared memory is the emulation's one array.
#pragma once
#include "kernels.cuh"

namespace herd::cuda {

// What the kernels' `extern __shared__ unsigned char smem_tc[]` refers to here.
namespace {
alignas(128) unsigned char smem_tc[200 * 1024];
}

template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, int threads, size_t shared, cudaStream_t, Args... args) {
  emu::launch(smem_tc, sizeof smem_tc, kernel, grid, threads, shared, args...);
}

void attention_forward_tc(cudaStream_t s, const AttentionShape& a, bf16* out, float* lse,
                          const bf16* q, const bf16* k, const bf16* v);
void attention_backward_tc(cudaStream_t s, const AttentionShape& a, bf16* dq, bf16* dk, bf16* dv,
                           const float* dsum, const bf16* dout, const bf16* q, const bf16* k,
                           const bf16* v, const float* lse);

}  // namespace herd::cuda
