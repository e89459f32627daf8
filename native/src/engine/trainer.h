// One data-parallel rank's training loop body: the model, AdamW's state and a TokenSource.
// A step draws the step's rows from the source, runs forward and backward micro-batch by
// micro-batch (gradients accumulate), clips the global gradient norm and updates with AdamW.
#pragma once
#include <cstdint>
#include <memory>

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
  int rank = 0, world = 1;
};

struct StepResult {
  double loss;       // mean cross-entropy over the step's tokens
  double grad_norm;  // global norm before clipping
  double lr;         // learning rate the step used
};

// Sets OpenMP's and OpenBLAS's thread counts for the calling thread (OpenMP's setting is
// per thread, and engine calls arrive on Node's worker threads).
void use_threads(int threads);

class Trainer {
 public:
  Trainer(const TrainerConfig& config, std::unique_ptr<TokenSource> source);

  StepResult step();

  // The end of a step, on the gradients already in the model: clip the global norm, take one
  // AdamW step at the scheduled learning rate, count the step. `loss` is passed through.
  StepResult update(double loss);

  Model<float>& model() { return model_; }
  AdamW& optimizer() { return adamw_; }
  TokenSource& source() { return *source_; }
  const TrainerConfig& config() const { return config_; }

  int64_t steps_done = 0;   // optimizer steps completed
  uint64_t tokens_seen = 0; // training tokens consumed, all ranks together

 private:
  TrainerConfig config_;
  std::unique_ptr<TokenSource> source_;
  Model<float> model_;
  AdamW adamw_;
  std::vector<int32_t> rows_, inputs_, targets_;
};

}  // namespace herd
