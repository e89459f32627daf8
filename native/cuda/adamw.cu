// AdamW with PyTorch's arithmetic (as engine/optimizer.cc) on fp32 master weights, writing the
// compute copy (bf16 or fp32) in the same pass; the global gradient norm; small conversions.
#include "kernels.cuh"

namespace herd::cuda {

// p ← p·(1 − lr·wd);  m ← m + (1−β1)(g − m);  v ← β2·v + (1−β2)·g²;
// p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε), with g the clipped gradient.
template <class T>
__global__ void adamw_kernel(float* master, T* weights, const float* grads, float* m, float* v,
                             size_t n, AdamWStep c) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = grads[i] * c.grad_scale;
  float p = master[i] * c.decay_factor;
  const float mi = m[i] + (1.0f - c.beta1) * (g - m[i]);
  const float vi = v[i] * c.beta2 + (1.0f - c.beta2) * g * g;
  p -= c.step_size * (mi / (sqrtf(vi) / c.bias2_sqrt + c.eps));
  m[i] = mi;
  v[i] = vi;
  master[i] = p;
  weights[i] = from_float<T>(p);
}

template <class T>
void adamw(cudaStream_t s, float* master, T* weights, const float* grads, float* m, float* v,
           size_t n, const AdamWStep& step) {
  if (n == 0) return;
  adamw_kernel<<<ceil_div(n, 256), 256, 0, s>>>(master, weights, grads, m, v, n, step);
  LAUNCH_CHECK();
}

// Σ g²: kPartials blocks each sum a fixed slice (threads, then the block), one block sums the
// partials in order. The same partition for any launch, so the same bits every run.
constexpr int kPartials = 1024;

__global__ void sum_squares_partial(double* partial, const float* g, size_t n) {
  __shared__ double per_thread[256];
  const size_t per = (n + kPartials - 1) / kPartials;
  const size_t lo = min(n, size_t(blockIdx.x) * per), hi = min(n, lo + per);
  double sum = 0.0;
  for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) sum += double(g[i]) * double(g[i]);
  per_thread[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x != 0) return;
  double total = 0.0;
  for (int t = 0; t < blockDim.x; t++) total += per_thread[t];
  partial[blockIdx.x] = total;
}

__global__ void sum_partials(double* out, const double* partial) {
  if (threadIdx.x != 0) return;
  double total = 0.0;
  for (int i = 0; i < kPartials; i++) total += partial[i];
  *out = total;
}

void sum_squares(cudaStream_t s, double* out, double* partial, const float* g, size_t n) {
  sum_squares_partial<<<kPartials, 256, 0, s>>>(partial, g, n);
  LAUNCH_CHECK();
  sum_partials<<<1, 32, 0, s>>>(out, partial);
  LAUNCH_CHECK();
}

template <class T>
__global__ void convert_kernel(T* out, const float* in, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = from_float<T>(in[i]);
}
template <class T>
__global__ void to_float_kernel(float* out, const T* in, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = to_float(in[i]);
}
template <class T>
__global__ void fill_kernel(T* x, float value, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = from_float<T>(value);
}
template <class T>
__global__ void add_kernel(T* y, const T* x, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = from_float<T>(to_float(y[i]) + to_float(x[i]));
}

template <class T>
void convert(cudaStream_t s, T* out, const float* in, size_t n) {
  if (n == 0) return;
  convert_kernel<<<ceil_div(n, 256), 256, 0, s>>>(out, in, n);
  LAUNCH_CHECK();
}
template <class T>
void to_float(cudaStream_t s, float* out, const T* in, size_t n) {
  if (n == 0) return;
  to_float_kernel<<<ceil_div(n, 256), 256, 0, s>>>(out, in, n);
  LAUNCH_CHECK();
}
template <class T>
void fill(cudaStream_t s, T* x, float value, size_t n) {
  if (n == 0) return;
  fill_kernel<<<ceil_div(n, 256), 256, 0, s>>>(x, value, n);
  LAUNCH_CHECK();
}
template <class T>
void add(cudaStream_t s, T* y, const T* x, size_t n) {
  if (n == 0) return;
  add_kernel<<<ceil_div(n, 256), 256, 0, s>>>(y, x, n);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                       \
  template void adamw<T>(cudaStream_t, float*, T*, const float*, float*, float*, size_t,      \
                         const AdamWStep&);                                                 \
  template void convert<T>(cudaStream_t, T*, const float*, size_t);                          \
  template void to_float<T>(cudaStream_t, float*, const T*, size_t);                         \
  template void fill<T>(cudaStream_t, T*, float, size_t);                                    \
  template void add<T>(cudaStream_t, T*, const T*, size_t);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
