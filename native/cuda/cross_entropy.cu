// Cross-entropy over the vocabulary, one block per token row:
//   loss = logsumexp(z) − z[target];  backward: z ← dloss·(softmax(z) − onehot(target)).
// The backward overwrites the logits in place, so no probability matrix is ever stored. A
// target below 0 (kIgnoreTarget: a prompt token of an instruction example) is not learned:
// its loss and its logits' gradient are 0.
#include "kernels.cuh"

namespace herd::cuda {

constexpr int kThreads = 512;

// The row's maximum and Σ exp(z − max), by each thread over a strided slice, then the block.
template <class T>
__device__ void row_softmax_stats(const T* z, int V, float* scratch, float* max_out,
                                  float* sum_out) {
  float m = -INFINITY;
  for (int i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, to_float(z[i]));
  m = block_max(m, scratch);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) sum += expf(to_float(z[i]) - m);
  *max_out = m;
  *sum_out = block_sum(sum, scratch);
}

template <class T>
__global__ void cross_entropy_forward_kernel(float* losses, const T* logits, const int32_t* targets,
                                             int V) {
  __shared__ float scratch[32];
  const T* z = logits + size_t(blockIdx.x) * V;
  const int target = targets[blockIdx.x];
  if (target < 0) {  // the whole block takes the same branch
    if (threadIdx.x == 0) losses[blockIdx.x] = 0.0f;
    return;
  }
  float m, sum;
  row_softmax_stats(z, V, scratch, &m, &sum);
  if (threadIdx.x == 0) losses[blockIdx.x] = m + logf(sum) - to_float(z[target]);
}

template <class T>
__global__ void cross_entropy_backward_kernel(T* logits, const int32_t* targets, int V,
                                              float dloss) {
  __shared__ float scratch[32];
  T* z = logits + size_t(blockIdx.x) * V;
  const int target = targets[blockIdx.x];
  if (target < 0) {
    for (int i = threadIdx.x; i < V; i += blockDim.x) z[i] = from_float<T>(0.0f);
    return;
  }
  float m, sum;
  row_softmax_stats(z, V, scratch, &m, &sum);
  const float scale = dloss / sum;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float p = expf(to_float(z[i]) - m) * scale;
    z[i] = from_float<T>(i == target ? p - dloss : p);
  }
}

template <class T>
void cross_entropy_forward(cudaStream_t s, float* losses, const T* logits, const int32_t* targets,
                           int N, int V) {
  cross_entropy_forward_kernel<<<N, kThreads, 0, s>>>(losses, logits, targets, V);
  LAUNCH_CHECK();
}

template <class T>
void cross_entropy_backward(cudaStream_t s, T* logits, const int32_t* targets, int N, int V,
                            float dloss) {
  cross_entropy_backward_kernel<<<N, kThreads, 0, s>>>(logits, targets, V, dloss);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                        \
  template void cross_entropy_forward<T>(cudaStream_t, float*, const T*, const int32_t*, int, \
                                         int);                                               \
  template void cross_entropy_backward<T>(cudaStream_t, T*, const int32_t*, int, int, float);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
