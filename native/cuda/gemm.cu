// Matrix products through cuBLASLt: operands fp32 or bf16, fp32 accumulation (compute type
// CUBLAS_COMPUTE_32F, so fp32 operands are not rounded to tf32), output fp32 or bf16.
//
// herd's matrices are row-major and cuBLASLt's are column-major. A row-major [r, c] matrix
// read as column-major is its transpose, so C = op(A)·op(B) is computed as
// Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's first operand is B, its second A, transposes unchanged.
#include <array>
#include <map>
#include <memory>
#include <utility>

#include "kernels.cuh"

namespace herd::cuda {

namespace {

void lt_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt ") + what + ": " + cublasGetStatusString(s));
}

cudaDataType_t cuda_type(DType t) { return t == DType::f32 ? CUDA_R_32F : CUDA_R_16BF; }

// Layout of a row-major matrix of `rows` × `cols` with row stride ld, as cuBLASLt sees it.
cublasLtMatrixLayout_t layout(DType t, int rows, int cols, int ld) {
  cublasLtMatrixLayout_t l;
  lt_check(cublasLtMatrixLayoutCreate(&l, cuda_type(t), cols, rows, ld), "layout");
  return l;
}

// Largest power of two (up to 256) dividing the address: cuBLASLt's heuristic assumes 256-byte
// aligned operands unless told otherwise, and would pick kernels that fault on others.
uint32_t alignment(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

}  // namespace

// One product shape's descriptors and the algorithm the heuristic chose for it. Everything
// the heuristic reads is in the key: transposes, sizes, types, strides, operand alignments.
struct MatmulPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~MatmulPlan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};
using MatmulKey = std::array<int64_t, 14>;
struct MatmulPlans {
  std::map<MatmulKey, std::unique_ptr<MatmulPlan>> by_shape;
};

void blas_create(Blas& blas, bool deterministic) {
  lt_check(cublasLtCreate(&blas.handle), "create");
  blas.workspace_bytes = 32u << 20;  // Hopper kernels want 32 MiB
  CUDA_CHECK(cudaMalloc(&blas.workspace, blas.workspace_bytes));
  blas.deterministic = deterministic;
  blas.plans = new MatmulPlans();
}

void blas_destroy(Blas& blas) {
  delete blas.plans;
  if (blas.workspace) cudaFree(blas.workspace);
  if (blas.handle) cublasLtDestroy(blas.handle);
  blas = Blas();
}

namespace {

// Asks cuBLASLt's heuristic for the best algorithm of one shape (the first call of a shape).
std::unique_ptr<MatmulPlan> plan_matmul(const Blas& blas, bool trans_a, bool trans_b, int m,
                                        int n, int k, DType at, int lda, uint32_t align_a,
                                        DType bt, int ldb, uint32_t align_b, DType ct, int ldc,
                                        uint32_t align_c) {
  auto plan = std::make_unique<MatmulPlan>();
  lt_check(cublasLtMatmulDescCreate(&plan->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "desc");
  const cublasOperation_t first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to B
  const cublasOperation_t second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // applies to A
  lt_check(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &first,
                                          sizeof first),
           "transa");
  lt_check(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &second,
                                          sizeof second),
           "transb");
  // Memory shapes (row-major): op(B) is [k, n], so B is [n, k] when transposed; likewise A.
  plan->lb = trans_b ? layout(bt, n, k, ldb) : layout(bt, k, n, ldb);
  plan->la = trans_a ? layout(at, k, m, lda) : layout(at, m, k, lda);
  plan->lc = layout(ct, m, n, ldc);

  cublasLtMatmulPreference_t pref;
  lt_check(cublasLtMatmulPreferenceCreate(&pref), "preference");
  // Destroys the preference however this function leaves.
  std::unique_ptr<void, void (*)(void*)> pref_owner(
      pref, [](void* p) { cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t(p)); });
  lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                &blas.workspace_bytes,
                                                sizeof blas.workspace_bytes),
           "workspace");
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> alignments[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_b},  // cuBLASLt's A is our B
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_a},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}};
  for (const auto& [attribute, bytes] : alignments)
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, attribute, &bytes, sizeof bytes),
             "alignment");
  if (blas.deterministic) {
    // Split-K reductions are the only place cuBLASLt's result could depend on scheduling;
    // allow none.
    uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    lt_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                  &none, sizeof none),
             "reduction scheme");
  }
  cublasLtMatmulHeuristicResult_t heuristic;
  int found = 0;
  lt_check(cublasLtMatmulAlgoGetHeuristic(blas.handle, plan->op, plan->lb, plan->la, plan->lc,
                                          plan->lc, pref, 1, &heuristic, &found),
           "heuristic");
  if (found == 0)
    throw Error("cuBLASLt: no algorithm for a " + std::to_string(m) + "x" + std::to_string(n) +
                "x" + std::to_string(k) + " product");
  plan->algo = heuristic.algo;
  return plan;
}

}  // namespace

void matmul(const Blas& blas, cudaStream_t stream, bool trans_a, bool trans_b, int m, int n, int k,
            const void* a, DType at, int lda, const void* b, DType bt, int ldb, float beta,
            void* c, DType ct, int ldc) {
  const uint32_t align_a = alignment(a), align_b = alignment(b), align_c = alignment(c);
  const MatmulKey key{trans_a, trans_b, m,   n,       k,   int(at), lda,
                      align_a, int(bt), ldb, align_b, int(ct), ldc, align_c};
  std::unique_ptr<MatmulPlan>& plan = blas.plans->by_shape[key];
  if (!plan)
    plan = plan_matmul(blas, trans_a, trans_b, m, n, k, at, lda, align_a, bt, ldb, align_b, ct,
                       ldc, align_c);
  const float one = 1.0f;
  lt_check(cublasLtMatmul(blas.handle, plan->op, &one, b, plan->lb, a, plan->la, &beta, c,
                          plan->lc, c, plan->lc, &plan->algo, blas.workspace, blas.workspace_bytes,
                          stream),
           "matmul");
}

}  // namespace herd::cuda
