// Token embedding: out[n] = table[tokens[n]], and its backward dtable[tokens[n]] += dout[n].
#include "kernels.cuh"

namespace herd::cuda {

template <class T>
__global__ void embedding_forward_kernel(T* out, const int32_t* tokens, const T* table, int N,
                                         int C) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * C) return;
  const size_t n = i / C, c = i % C;
  out[i] = table[size_t(tokens[n]) * C + c];
}

// A token can appear many times in a batch, so rows of dtable receive several sums. Fast
// path: one thread per element, atomicAdd (the order of the adds, and so the last bits,
// varies between runs).
template <class T>
__global__ void embedding_backward_atomic(float* dtable, const T* dout, const int32_t* tokens,
                                          int N, int C) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * C) return;
  const size_t n = i / C, c = i % C;
  atomicAdd(dtable + size_t(tokens[n]) * C + c, to_float(dout[i]));
}

// Deterministic path: one thread per channel walks the tokens in order, so every element of
// dtable is summed by one thread in a fixed order. Only C threads: slow, for checks and
// reproducibility runs.
template <class T>
__global__ void embedding_backward_ordered(float* dtable, const T* dout, const int32_t* tokens,
                                           int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int n = 0; n < N; n++) dtable[size_t(tokens[n]) * C + c] += to_float(dout[size_t(n) * C + c]);
}

template <class T>
void embedding_forward(cudaStream_t s, T* out, const int32_t* tokens, const T* table, int N,
                       int C) {
  embedding_forward_kernel<<<ceil_div(size_t(N) * C, 256), 256, 0, s>>>(out, tokens, table, N, C);
  LAUNCH_CHECK();
}

template <class T>
void embedding_backward(cudaStream_t s, float* dtable, const T* dout, const int32_t* tokens, int N,
                        int C, bool deterministic) {
  if (deterministic)
    embedding_backward_ordered<<<ceil_div(C, 128), 128, 0, s>>>(dtable, dout, tokens, N, C);
  else
    embedding_backward_atomic<<<ceil_div(size_t(N) * C, 256), 256, 0, s>>>(dtable, dout, tokens, N,
                                                                           C);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                        \
  template void embedding_forward<T>(cudaStream_t, T*, const int32_t*, const T*, int, int);    \
  template void embedding_backward<T>(cudaStream_t, float*, const T*, const int32_t*, int, int, \
                                      bool);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
