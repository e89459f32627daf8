// Rotary position embeddings (Su et al. 2021), as engine/ops.h: each head vector's pairs
// (x[2i], x[2i+1]) turn by the angle pos·θ^(−2i/head_dim); the backward turns back (the
// rotation is orthogonal, so its gradient is its transpose). One thread per pair. pos is the
// token's place in its row, or with packed examples its `positions` entry.
#include "kernels.cuh"

namespace herd::cuda {

template <class T>
__global__ void rope_kernel(T* x, int stride, const float* cos_t, const float* sin_t,
                            const int32_t* positions, int Tn, int n_heads, int half, float sign,
                            size_t pairs) {
  const size_t p = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= pairs) return;
  const int i = int(p % half);
  const size_t head = p / half;  // (row, h) flattened
  const int h = int(head % n_heads);
  const size_t row = head / n_heads;
  const int pos = positions ? positions[row] : int(row % Tn);
  T* v = x + row * size_t(stride) + size_t(h) * 2 * half + 2 * i;
  const float c = cos_t[size_t(pos) * half + i], sn = sign * sin_t[size_t(pos) * half + i];
  const float x0 = to_float(v[0]), x1 = to_float(v[1]);
  v[0] = from_float<T>(x0 * c - x1 * sn);
  v[1] = from_float<T>(x0 * sn + x1 * c);
}

template <class T>
void rope(cudaStream_t s, T* x, int stride, const float* cos_t, const float* sin_t, int B, int Tn,
          int n_heads, int head_dim, bool inverse, const int32_t* positions) {
  const int half = head_dim / 2;
  const size_t pairs = size_t(B) * Tn * n_heads * half;
  rope_kernel<<<ceil_div(pairs, 256), 256, 0, s>>>(x, stride, cos_t, sin_t, positions, Tn, n_heads,
                                                   half, inverse ? -1.0f : 1.0f, pairs);
  LAUNCH_CHECK();
}

#define INSTANTIATE(T)                                                                     \
  template void rope<T>(cudaStream_t, T*, int, const float*, const float*, int, int, int, int, \
                        bool, const int32_t*);
INSTANTIATE(float)
INSTANTIATE(bf16)

}  // namespace herd::cuda
