// The one collective data parallelism needs: every rank contributes a float buffer and gets
// back the element-wise sum over all ranks. The trainer talks to this interface only, so the
// CPU (Gloo) and CUDA (NCCL) backends plug in the same way.
#pragma once
#include <cstddef>

namespace herd {

class Collective {
 public:
  virtual ~Collective() = default;

  // In place: data[i] ← Σ over ranks of data[i]. Every rank must call it with the same n, in
  // the same order of calls. Throws std::runtime_error (with what went wrong: a peer gone, a
  // timeout) instead of blocking forever.
  virtual void all_reduce_sum(float* data, size_t n) = 0;

  virtual int rank() const = 0;
  virtual int world() const = 0;
};

}  // namespace herd
