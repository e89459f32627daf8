// A minimal stand-in for OpenBLAS's cblas.h, so bench/gpu builds the CPU engine's reference
// code (engine/ops.h, model.cc) on a GPU machine that has no OpenBLAS. Plain loops, OpenMP
// over rows: slow, but the checks run small shapes. Only what ops.h and trainer.cc call.
#pragma once

enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112 };

template <class T>
inline void shim_gemm(CBLAS_ORDER, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                      T alpha, const T* a, int lda, const T* b, int ldb, T beta, T* c, int ldc) {
#pragma omp parallel for schedule(static) if (m >= 64)
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      T s = 0;
      for (int p = 0; p < k; p++) {
        const T av = ta == CblasTrans ? a[p * lda + i] : a[i * lda + p];
        const T bv = tb == CblasTrans ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      c[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * c[i * ldc + j]);
    }
}

inline void cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                        float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                        float* c, int ldc) {
  shim_gemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void cblas_dgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
                        double alpha, const double* a, int lda, const double* b, int ldb,
                        double beta, double* c, int ldc) {
  shim_gemm(o, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void openblas_set_num_threads(int) {}
