// The CUDA backend as the engine sees it: libherd_cuda.so (native/cuda/herd_cuda.h) loaded
// with dlopen on first use, so a build without CUDA, or a machine without a GPU, still runs
// the CPU engine. DeviceModel owns one model on one GPU and turns the C API's error codes into
// exceptions carrying herd_cuda_last_error().
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "../../cuda/herd_cuda.h"
#include "engine/model.h"

namespace herd {

// The model description the C API takes, built from the engine's ParamLayout (one layout for
// both backends, so weights and checkpoints move between them as they are).
struct CudaModelDesc {
  ParamLayout layout;
  std::vector<herd_cuda_layer> layers;
  std::vector<herd_cuda_tensor> tensors;
  herd_cuda_model_desc desc{};
  explicit CudaModelDesc(const ModelConfig& c);
};

// The library file: $HERD_CUDA_LIBRARY when set (a test's stand-in), else libherd_cuda.so
// beside the Node addon.
std::string cuda_library_path();
// Whether the library loads; on failure `error` (when given) says why.
bool cuda_library_loads(std::string* error = nullptr);
// CUDA devices the library sees: 0 when it does not load or there is no GPU or driver.
int cuda_device_count();

struct CudaRunOptions {
  int device = 0;
  bool bf16 = true;
  bool recompute = false;
  bool deterministic = false;
};

class DeviceModel {
 public:
  // The model on the GPU, from host fp32 weights in ParamLayout order.
  DeviceModel(const ModelConfig& config, const CudaRunOptions& run, int micro_batch, int seq_len,
              const float* params);
  ~DeviceModel();
  DeviceModel(const DeviceModel&) = delete;
  DeviceModel& operator=(const DeviceModel&) = delete;

  // Mean loss over the learned targets (≥ 0); positions as Model::forward (optional).
  double forward(const int32_t* tokens, const int32_t* targets, const int32_t* positions, int B,
                 int T);
  void backward(float dloss, bool last_micro_batch);
  void zero_grad();
  // Clip and one AdamW step; returns the gradient norm before clipping.
  double step(const herd_cuda_adamw& c);
  void get_params(float* out);
  void set_params(const float* params);
  void get_grads(float* out);
  // Elements [offset, offset + n) of the gradients, or of the weights (LoRA's targets).
  void get_grads_range(size_t offset, size_t n, float* out);
  void set_params_range(size_t offset, size_t n, const float* params);
  void get_optimizer_state(float* m, float* v, int64_t* steps);
  void set_optimizer_state(const float* m, const float* v, int64_t steps);
  // Joins the ranks' NCCL communicator (id from rank 0); gradients are then averaged in
  // buckets during the last micro-batch's backward.
  void attach_nccl(const unsigned char id[HERD_CUDA_NCCL_ID_BYTES], int rank, int world,
                   bool shard_optimizer);
  size_t device_bytes() const;

 private:
  CudaModelDesc desc_;
  herd_cuda_model* model_ = nullptr;
};

// A new NCCL unique id (rank 0's), for the other ranks to join with.
void cuda_nccl_unique_id(unsigned char id[HERD_CUDA_NCCL_ID_BYTES]);

}  // namespace herd
