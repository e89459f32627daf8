// Shared by the two attention files: attention.cu (the CUDA-core kernels, the fp32 path and
// the bf16 fallback, and the choice between them) and attention_tc.cu (tensor cores, bf16).
#pragma once
#include "kernels.cuh"

namespace herd::cuda {

// Launches a kernel with `shared` bytes of dynamic shared memory, raising its limit first
// (a kernel must opt in to more than 48 KB).
template <class Kernel, class... Args>
void launch(Kernel kernel, dim3 grid, int threads, size_t shared, cudaStream_t s, Args... args) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
  kernel<<<grid, threads, shared, s>>>(args...);
  LAUNCH_CHECK();
}

// attention_tc.cu. The caller (attention.cu) has checked the head dim (64 or 128) and, for the
// backward, already written dsum = rowsum(dO∘O). Same arguments and outputs as
// attention_forward/attention_backward.
void attention_forward_tc(cudaStream_t s, const AttentionShape& a, bf16* out, float* lse,
                          const bf16* q, const bf16* k, const bf16* v);
void attention_backward_tc(cudaStream_t s, const AttentionShape& a, bf16* dq, bf16* dk, bf16* dv,
                           const float* dsum, const bf16* dout, const bf16* q, const bf16* k,
                           const bf16* v, const float* lse);

}  // namespace herd::cuda
