#include "cpu/matmul.h"

#include <cblas.h>

namespace herd::cpu {

void matmul(const float* a, const float* b, float* c, int m, int k, int n) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

}  // namespace herd::cpu
