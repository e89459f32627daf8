// The LLaMA model on one GPU, the same network and parameter layout as the CPU engine's
// Model (engine/model.h): forward, backward, AdamW step. T is the activation and matrix
// operand type (bf16 for training, float for checks); master weights, gradients and AdamW
// moments are fp32. herd_cuda_model is the C API's handle; api.cu wraps these methods.
#pragma once
#include <memory>
#include <vector>

#include "herd_cuda.h"
#include "kernels.cuh"
#include "nccl.cuh"

struct herd_cuda_model {
  virtual ~herd_cuda_model() = default;
  virtual double forward(const int32_t* tokens, const int32_t* targets, const int32_t* positions,
                         int B, int T) = 0;
  virtual void backward(float dloss, bool last_micro_batch) = 0;
  virtual void zero_grad() = 0;
  virtual double step(const herd_cuda_adamw& c) = 0;
  virtual void get_params(float* out) = 0;
  virtual void get_grads(float* out) = 0;
  virtual void get_losses(float* out) = 0;
  virtual void set_params(const float* params) = 0;
  virtual void get_grads_range(size_t offset, size_t n, float* out) = 0;
  virtual void set_params_range(size_t offset, size_t n, const float* params) = 0;
  virtual void get_optimizer_state(float* m, float* v, int64_t* steps) = 0;
  virtual void set_optimizer_state(const float* m, const float* v, int64_t steps) = 0;
  virtual void synchronize() = 0;
  virtual void attach_nccl(const herd::cuda::NcclId& id, int rank, int world, bool shard) = 0;
  virtual size_t bytes() const = 0;
};

namespace herd::cuda {

// Creates the model for run.bf16's precision, on run.device, from host fp32 weights.
std::unique_ptr<herd_cuda_model> create_model(const herd_cuda_model_desc& desc,
                                              const herd_cuda_run_config& run,
                                              const float* params);

}  // namespace herd::cuda
