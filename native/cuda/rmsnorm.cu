// RMSNorm (Zhang & Sennrich 2019): y = x · rstd · g with rstd = 1/√(mean(x²) + eps).
// Backward, with u = dy·g:  dx = rstd·u − x·rstd³·mean(u·x);  dg = Σₙ dy·x·rstd.
#include "kernels.cuh"

namespace herd::cuda {

// One warp per row: the row's sum of squares by a warp reduction.
template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* in, const T* g, int N, int C,
                                       float eps) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const T* x = in + size_t(row) * C;
  float sum_sq = 0.0f;
  for (int i = lane; i < C; i += 32) {
    const float v = to_float(x[i]);
    sum_sq += v * v;
  }
  const float r = rsqrtf(warp_sum(sum_sq) / float(C) + eps);
  if (lane == 0) rstd[row] = r;
  T* y = out + size_t(row) * C;
  for (int i = lane; i < C; i += 32) y[i] = from_float<T>(to_float(x[i]) * r * to_float(g[i]));
}

// Rows handled by one block of the backward; its gain gradient over those rows is one row of
// the `partial` scratch, and a second kernel sums the partial rows in order (no atomics).
constexpr int kBackwardRowsPerBlock = 64;
int rmsnorm_partial_rows(int N) { return ceil_div(N, kBackwardRowsPerBlock); }

// One block per group of rows; the block's threads share each row (a block-wide dot product)
// and each thread owns the same columns of every row, so its share of dg needs no atomics.
// Shared memory: C floats of dg partials + 32 floats of reduction scratch.
template <class T>
__global__ void rmsnorm_backward_kernel(T* din, float* partial, const T* dout, const T* in,
                                        const T* g, const float* rstd, int N, int C) {
  extern __shared__ float shared[];
  float* dg = shared;
  float* scratch = shared + C;
  for (int i = threadIdx.x; i < C; i += blockDim.x) dg[i] = 0.0f;
  const int row0 = blockIdx.x * kBackwardRowsPerBlock;
  const int row1 = min(N, row0 + kBackwardRowsPerBlock);
  for (int row = row0; row < row1; row++) {
    const T* x = in + size_t(row) * C;
    const T* dy = dout + size_t(row) * C;
    T* dx = din + size_t(row) * C;
    const float r = rstd[row];
    float dot = 0.0f;
    for (int i = threadIdx.x; i < C; i += blockDim.x)
      dot += to_float(dy[i]) * to_float(g[i]) * to_float(x[i]);
    const float coef = block_sum(dot, scratch) * r * r * r / float(C);
    for (int i = threadIdx.x; i < C; i += blockDim.x) {
      const float xi = to_float(x[i]), dyi = to_float(dy[i]);
      dx[i] = from_float<T>(to_float(dx[i]) + r * dyi * to_float(g[i]) - xi * coef);
      dg[i] += dyi * xi * r;
    }
  }
  for (int i = threadIdx.x; i < C; i += blockDim.x) partial[size_t(blockIdx.x) * C + i] = dg[i];
}

__global__ void sum_partial_rows(float* dg, const float* partial, int rows, int C) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= C) return;
  float sum = 0.0f;
  for (int r = 0; r < rows; r++) sum += partial[size_t(r) * C + i];
  dg[i] += sum;
}

template <class T>
void rmsnorm_forward(cudaStream_t s, T* out, float* rstd, const T* in, const T* g, int N, int C,
                     float eps) {
  rmsnorm_forward_kernel<<<ceil_div(N, 8), 256, 0, s>>>(out, rstd, in, g, N, C, eps);
  LAUNCH_CHECK();
}

template <class T>
void rmsnorm_backward(cudaStream_t s, T* din, float* dg, float* partial, const T* dout,
                      const T* in, const T* g, const float* rstd, int N, int C) {
  const int blocks = rmsnorm_partial_rows(N);
  const size_t shared = (size_t(C) + 32) * sizeof(float);
  if (shared > 48 * 1024) throw Error("rmsnorm: dim " + std::to_string(C) + " is too large");
  rmsnorm_backward_kernel<<<blocks, 256, shared, s>>>(din, partial, dout, in, g, rstd, N, C);
  LAUNCH_CHECK();
  sum_partial_rows<<<ceil_div(C, 256), 256, 0, s>>>(dg, partial, blocks, C);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                           \
  template void rmsnorm_forward<T>(cudaStream_t, T*, float*, const T*, const T*, int, int, float); \
  template void rmsnorm_backward<T>(cudaStream_t, T*, float*, float*, const T*, const T*,         \
                                    const T*, const float*, int, int);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
