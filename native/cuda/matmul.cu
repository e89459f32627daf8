// C = A · B in fp32 on the GPU through cuBLAS, row-major like the CPU backend. cuBLAS is
// column-major, so compute Cᵀ = Bᵀ · Aᵀ, which in row-major memory is C.
#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" int herd_cuda_matmul(const float* a, const float* b, float* c, int m, int k, int n) {
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) return -1;
  float *da = nullptr, *db = nullptr, *dc = nullptr;
  size_t sa = sizeof(float) * size_t(m) * k, sb = sizeof(float) * size_t(k) * n,
         sc = sizeof(float) * size_t(m) * n;
  int rc = 0;
  const float one = 1.0f, zero = 0.0f;
  if (cudaMalloc(&da, sa) || cudaMalloc(&db, sb) || cudaMalloc(&dc, sc)) { rc = -2; goto done; }
  cudaMemcpy(da, a, sa, cudaMemcpyHostToDevice);
  cudaMemcpy(db, b, sb, cudaMemcpyHostToDevice);
  if (cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, db, n, da, k, &zero, dc, n) !=
      CUBLAS_STATUS_SUCCESS) { rc = -3; goto done; }
  cudaMemcpy(c, dc, sc, cudaMemcpyDeviceToHost);
done:
  cudaFree(da); cudaFree(db); cudaFree(dc);
  cublasDestroy(handle);
  return rc;
}
