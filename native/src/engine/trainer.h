// One data-parallel rank's training loop body: the model, AdamW's state and a TokenSource.
// A step draws the step's rows from the source, runs forward and backward micro-batch by
// micro-batch (gradients accumulate), averages the gradients over the ranks (when there is a
// Collective), clips the global gradient norm and updates with AdamW.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "dist/collective.h"
#include "engine/cuda_device.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/optimizer.h"
#include "engine/token_source.h"

namespace herd {

struct TrainerConfig {
  ModelConfig model;
  OptimizerConfig optimizer;
  int seq_len = 0;
  int micro_batch = 1;   // sequences per forward/backward pass
  int accum_steps = 1;   // micro-batches per optimizer step
  uint64_t seed = 0;     // initial weights (the source has its own seed)
  int threads = 1;       // OpenMP and OpenBLAS threads
  int rank = 0, world = 1;  // from the Collective when there is one
  // "cpu", or "cuda": forward, backward and AdamW on a GPU (engine/cuda_device.h), with the
  // host model as the mirror that checkpoints read and resume writes.
  std::string backend = "cpu";
  CudaRunOptions cuda;
  bool shard_optimizer = false;  // cuda with several ranks: ZeRO-1 (reduce-scatter, all-gather)
  LoraConfig lora;               // rank > 0: only LoRA adapters train (engine/lora.h)
};

struct StepResult {
  double loss;       // mean cross-entropy over the step's learned tokens
  double grad_norm;  // global norm before clipping
  double lr;         // learning rate the step used
  bool stop = false; // some rank asked to stop after this step (all ranks agree)
};

// Sets OpenMP's thread count for the calling thread (the setting is per thread, and engine
// calls arrive on Node's worker threads) and keeps OpenBLAS single-threaded (see ops::gemm).
void use_threads(int threads);

class Trainer {
 public:
  // `collective` (optional) joins this trainer to its data-parallel peers: each rank draws its
  // own rows of the global batch, and every rank applies the same averaged update.
  Trainer(const TrainerConfig& config, std::shared_ptr<TokenSource> source,
          std::shared_ptr<Collective> collective = nullptr);

  // One optimizer step. `stop_requested`: this rank wants to stop (SIGTERM); the answer's
  // `stop` says whether any rank did, so all ranks stop after the same step.
  StepResult step(bool stop_requested = false);

  // The end of a step, on the gradients already in the model: clip the global norm, take one
  // AdamW step at the scheduled learning rate, count the step. `loss` is passed through.
  StepResult update(double loss);

  // The CUDA backend keeps the weights, gradients and AdamW's state on the GPU, with
  // model() and optimizer() as the host mirror that checkpoints read and resume writes.
  // sync_host() brings the mirror up to date (a copy only when a step ran since the last
  // one); host_changed() says the mirror was written, and the device takes it before its next
  // step. Both do nothing on the CPU backend.
  bool on_device() const { return device_ != nullptr; }
  void sync_host();
  void host_changed() { device_stale_ = device_ != nullptr; }

  Model<float>& model() { return model_; }
  // With LoRA, AdamW's state is the adapters' (laid out as lora()->tensors()), not the model's.
  AdamW& optimizer() { return adamw_; }
  Lora* lora() { return lora_.get(); }
  TokenSource& source() { return *source_; }
  const TrainerConfig& config() const { return config_; }

  int64_t steps_done = 0;   // optimizer steps completed
  uint64_t tokens_seen = 0; // training tokens consumed, all ranks together

 private:
  TrainerConfig config_;
  // Sums the gradients over the ranks and divides by the world size. Every rank then holds
  // identical gradients. (On the GPU, NCCL does this during backward.)
  void average_grads_over_ranks();
  // Agrees on the mean loss and on stopping.
  void agree_over_ranks(double& loss, bool& stop);
  // Draws the step's rows into inputs_/targets_ (and positions_ for packed examples) and
  // returns the learned targets over all ranks: every rank divides by the same count.
  double draw_rows();
  // Joins the ranks' NCCL communicator: rank 0's id reaches the others over the collective.
  void join_nccl();
  // LoRA's update in place of AdamW on the model: the adapters' gradients from the targets'
  // (read from the device when there is one), averaged over CPU ranks, clipped; AdamW on the
  // adapters; the merged targets written back. Returns the gradient norm before clipping.
  double update_adapters(double lr);

  std::shared_ptr<TokenSource> source_;
  std::shared_ptr<Collective> collective_;
  Model<float> model_;
  std::unique_ptr<Lora> lora_;
  AdamW adamw_;
  std::unique_ptr<DeviceModel> device_;
  bool host_stale_ = false;    // the device stepped since the mirror was copied
  bool device_stale_ = false;  // the mirror was written since the device was
  void sync_device();
  std::vector<int32_t> rows_, inputs_, targets_, positions_;
  std::vector<uint8_t> learn_;
};

}  // namespace herd
