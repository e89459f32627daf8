// cuBLASLt (and cublasSgemm) for the CPU emulation, by cuBLAS's documented semantics, not by
// how herd calls it: matrices are column-major (element (i, j) of a rows × cols layout at
// i + j·ld, ld ≥ rows); D = α·op(A)·op(B) + β·C with op(A) m × k, op(B) k × n, C and D
// m × n; products accumulate in fp32 (CUBLAS_COMPUTE_32F); C is not read when β = 0.
// Supported types, as cuBLASLt's table for 32F compute: A, B, C, D all fp32; or A, B bf16
// with C, D both bf16 or both fp32. Each call checks its arguments as the library would
// (dimensions that do not agree, leading dimensions, the operands inside device memory, the
// alignments promised to the heuristic) and answers CUBLAS_STATUS_INVALID_VALUE or
// NOT_SUPPORTED instead of computing.
#include <cstring>
#include <vector>

#include "cublasLt.h"
#include "cublas_v2.h"

struct cublasLtContext {};
struct cublasContext {};
struct cublasLtMatmulDescOpaque {
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct cublasLtMatmulPreferenceOpaque {
  uint32_t align[4] = {256, 256, 256, 256};  // A B C D: cuBLASLt assumes 256 unless told
};

namespace emu {
bool is_device_memory(const void* p, size_t bytes);  // emulation.cc
}

namespace {

struct Matrix {
  cudaDataType_t type;
  const void* p;
  int64_t rows, cols, ld;
  float at(int64_t i, int64_t j) const {
    const int64_t e = i + j * ld;
    if (type == CUDA_R_32F) return static_cast<const float*>(p)[e];
    return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[e]);
  }
  size_t bytes() const {
    return size_t((cols - 1) * ld + rows) * (type == CUDA_R_32F ? 4 : 2);
  }
};

// D = α·op(A)·op(B) + β·C over column-major matrices. op(A) and op(B) are first copied to
// fp32 arrays (row i of op(A), column j of op(B) contiguous), so the dot products run over
// contiguous memory; the sums are fp32.
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, float alpha, const Matrix& A,
                    const Matrix& B, float beta, const Matrix& C, const Matrix& D) {
  const int64_t m = D.rows, n = D.cols;
  const int64_t k = ta == CUBLAS_OP_N ? A.cols : A.rows;
  const bool a_ok = ta == CUBLAS_OP_N ? A.rows == m : A.cols == m;
  const bool b_ok = tb == CUBLAS_OP_N ? (B.rows == k && B.cols == n) : (B.cols == k && B.rows == n);
  if (!a_ok || !b_ok || C.rows != m || C.cols != n || m <= 0 || n <= 0 || k <= 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  for (const Matrix* x : {&A, &B, &C, &D})
    if (x->ld < x->rows) return CUBLAS_STATUS_INVALID_VALUE;
  const bool f32 = A.type == CUDA_R_32F && B.type == CUDA_R_32F && C.type == CUDA_R_32F &&
                   D.type == CUDA_R_32F;
  const bool bf = A.type == CUDA_R_16BF && B.type == CUDA_R_16BF && C.type == D.type;
  if (!f32 && !bf) return CUBLAS_STATUS_NOT_SUPPORTED;
  for (const Matrix* x : {&A, &B, &D})
    if (!emu::is_device_memory(x->p, x->bytes())) return CUBLAS_STATUS_INVALID_VALUE;
  if (beta != 0.0f && !emu::is_device_memory(C.p, C.bytes())) return CUBLAS_STATUS_INVALID_VALUE;

  std::vector<float> a(size_t(m) * k), b(size_t(n) * k);
  for (int64_t i = 0; i < m; i++)
    for (int64_t p = 0; p < k; p++) a[i * k + p] = ta == CUBLAS_OP_N ? A.at(i, p) : A.at(p, i);
  for (int64_t j = 0; j < n; j++)
    for (int64_t p = 0; p < k; p++) b[j * k + p] = tb == CUBLAS_OP_N ? B.at(p, j) : B.at(j, p);
  // C and D may be the same matrix (herd accumulates in place): each element is read before
  // it is written, by the same iteration.
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; j++)
    for (int64_t i = 0; i < m; i++) {
      const float* x = &a[i * k];
      const float* y = &b[j * k];
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t p = 0; p < k; p++) s += x[p] * y[p];
      float d = alpha * s;
      if (beta != 0.0f) d += beta * C.at(i, j);
      const int64_t e = i + j * D.ld;
      if (D.type == CUDA_R_32F) static_cast<float*>(const_cast<void*>(D.p))[e] = d;
      else static_cast<__nv_bfloat16*>(const_cast<void*>(D.p))[e] = __float2bfloat16_rn(d);
    }
  return CUBLAS_STATUS_SUCCESS;
}

Matrix matrix(const void* p, const cublasLtMatrixLayoutOpaque* l) {
  return {l->type, p, int64_t(l->rows), int64_t(l->cols), l->ld};
}

template <class T>
bool read(T& out, const void* value, size_t bytes) {
  if (!value || bytes != sizeof(T)) return false;
  std::memcpy(&out, value, sizeof(T));
  return true;
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  *h = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  *desc = new cublasLtMatmulDescOpaque();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}
// TRANSA and TRANSB are int32_t (cublasOperation_t) attributes.
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attribute,
                                              const void* value, size_t bytes) {
  int32_t op;
  if (!read(op, value, bytes) || (op != CUBLAS_OP_N && op != CUBLAS_OP_T))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (attribute == CUBLASLT_MATMUL_DESC_TRANSA) desc->transa = cublasOperation_t(op);
  else if (attribute == CUBLASLT_MATMUL_DESC_TRANSB) desc->transb = cublasOperation_t(op);
  else return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType_t type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  if ((type != CUDA_R_32F && type != CUDA_R_16BF) || ld < int64_t(rows))
    return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new cublasLtMatmulPreferenceOpaque();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
// Values are checked against their documented types (uint64_t workspace, uint32_t others);
// the minimum alignments are kept, and cublasLtMatmul checks the pointers against them.
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attribute,
                                                    const void* value, size_t bytes) {
  uint64_t u64;
  uint32_t u32;
  switch (attribute) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return read(u64, value, bytes) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
      return read(u32, value, bytes) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
      if (!read(u32, value, bytes) || u32 == 0 || (u32 & (u32 - 1)))
        return CUBLAS_STATUS_INVALID_VALUE;
      pref->align[attribute - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = u32;
      return CUBLAS_STATUS_SUCCESS;
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

// One algorithm, which remembers the alignments it was chosen for.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t* results,
                                              int* found) {
  if (!handle || !desc || !a || !b || !c || !d || !pref || requested < 1 || !results || !found)
    return CUBLAS_STATUS_INVALID_VALUE;
  std::memset(results, 0, sizeof *results);
  for (int i = 0; i < 4; i++) results->algo.data[i] = pref->align[i];
  results->state = CUBLAS_STATUS_SUCCESS;
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void* alpha, const void* A, cublasLtMatrixLayout_t a,
                              const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D,
                              cublasLtMatrixLayout_t d, const cublasLtMatmulAlgo_t* algo,
                              void*, size_t, cudaStream_t) {
  if (!handle || !desc || !alpha || !beta || !a || !b || !c || !d || !algo)
    return CUBLAS_STATUS_INVALID_VALUE;
  const void* pointers[4] = {A, B, C, D};
  for (int i = 0; i < 4; i++)
    if (algo->data[i] == 0 || reinterpret_cast<uintptr_t>(pointers[i]) % algo->data[i] != 0)
      return CUBLAS_STATUS_INVALID_VALUE;  // the algorithm assumed a larger alignment
  return gemm(desc->transa, desc->transb, *static_cast<const float*>(alpha), matrix(A, a),
              matrix(B, b), *static_cast<const float*>(beta), matrix(C, c), matrix(D, d));
}

// ---- legacy cuBLAS

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const bool na = transa == CUBLAS_OP_N, nb = transb == CUBLAS_OP_N;
  const Matrix a{CUDA_R_32F, A, na ? m : k, na ? k : m, lda};
  const Matrix b{CUDA_R_32F, B, nb ? k : n, nb ? n : k, ldb};
  const Matrix cm{CUDA_R_32F, C, m, n, ldc};
  return gemm(transa, transb, *alpha, a, b, *beta, cm, cm);
}
