// Stands in for <cublas_v2.h> in the CPU emulation: the one legacy cuBLAS call
// native/cuda/matmul.cu makes (cublasSgemm), column-major as cuBLAS defines it (cublas.cc).
#pragma once
#include "cublasLt.h"

using cublasHandle_t = struct cublasContext*;
cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc);
