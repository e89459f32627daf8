// The CUDA backend's smallest piece: device discovery. Kernels for the engine live beside it
// (one file per concept) and are compiled for sm_80 and sm_90.
#include <cuda_runtime.h>

extern "C" int herd_cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}
