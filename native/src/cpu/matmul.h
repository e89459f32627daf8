#pragma once
// C = A · B for row-major fp32 matrices: A is m×k, B is k×n, C is m×n.
namespace herd::cpu {
void matmul(const float* a, const float* b, float* c, int m, int k, int n);
}
