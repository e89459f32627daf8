// SwiGLU (Shazeer 2020): g = silu(a)·b with silu(a) = a·σ(a); d silu/da = σ(a)·(1 + a·(1 − σ(a))).
#include "kernels.cuh"

namespace herd::cuda {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

template <class T>
__global__ void swiglu_forward_kernel(T* out, const T* a, const T* b, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = to_float(a[i]);
  out[i] = from_float<T>(x * sigmoid(x) * to_float(b[i]));
}

template <class T>
__global__ void swiglu_backward_kernel(T* da, T* db, const T* dout, const T* a, const T* b,
                                       size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float x = to_float(a[i]), y = to_float(b[i]), d = to_float(dout[i]);
  const float s = sigmoid(x);
  da[i] = from_float<T>(d * y * s * (1.0f + x * (1.0f - s)));
  db[i] = from_float<T>(d * x * s);
}

template <class T>
void swiglu_forward(cudaStream_t s, T* out, const T* a, const T* b, size_t n) {
  swiglu_forward_kernel<<<ceil_div(n, 256), 256, 0, s>>>(out, a, b, n);
  LAUNCH_CHECK();
}

template <class T>
void swiglu_backward(cudaStream_t s, T* da, T* db, const T* dout, const T* a, const T* b,
                     size_t n) {
  swiglu_backward_kernel<<<ceil_div(n, 256), 256, 0, s>>>(da, db, dout, a, b, n);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                    \
  template void swiglu_forward<T>(cudaStream_t, T*, const T*, const T*, size_t);          \
  template void swiglu_backward<T>(cudaStream_t, T*, T*, const T*, const T*, const T*, size_t);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
