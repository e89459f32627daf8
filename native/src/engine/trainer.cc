#include "engine/trainer.h"

#include <cblas.h>
#include <omp.h>

#include <stdexcept>

namespace herd {

void use_threads(int threads) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

Trainer::Trainer(const TrainerConfig& config, std::unique_ptr<TokenSource> source)
    : config_(config), source_(std::move(source)), model_(config.model),
      adamw_(model_.num_parameters()) {
  if (!source_) throw std::invalid_argument("trainer: no token source");
  if (config_.seq_len <= 0 || config_.seq_len > config_.model.max_seq_len)
    throw std::invalid_argument("trainer: seqLen " + std::to_string(config_.seq_len) +
                                " must be in [1, maxSeqLen = " +
                                std::to_string(config_.model.max_seq_len) + "]");
  if (config_.micro_batch <= 0 || config_.accum_steps <= 0 || config_.threads <= 0)
    throw std::invalid_argument("trainer: microBatch, accumulation steps and threads must be positive");
  if (source_->vocab_size() > config_.model.vocab_size)
    throw std::invalid_argument("trainer: the data's vocabulary (" +
                                std::to_string(source_->vocab_size()) +
                                ") is larger than the model's (" +
                                std::to_string(config_.model.vocab_size) + ")");
  use_threads(config_.threads);
  model_.init_weights(config_.seed);
}

StepResult Trainer::step() {
  use_threads(config_.threads);
  const int B = config_.micro_batch, T = config_.seq_len, K = config_.accum_steps;
  const int rows = B * K;

  rows_.resize(size_t(rows) * (T + 1));
  source_->batch(uint64_t(steps_done), config_.rank, config_.world, rows, T, rows_.data());
  inputs_.resize(size_t(rows) * T);
  targets_.resize(size_t(rows) * T);
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < T; t++) {
      inputs_[size_t(r) * T + t] = rows_[size_t(r) * (T + 1) + t];
      targets_[size_t(r) * T + t] = rows_[size_t(r) * (T + 1) + t + 1];
    }

  // The loss is the mean over all the step's tokens, so each micro-batch's gradient is
  // scaled by 1 / (rows · T) and the micro-batches' gradients simply add up.
  model_.zero_grad();
  double loss = 0;
  for (int k = 0; k < K; k++) {
    const size_t off = size_t(k) * B * T;
    loss += model_.forward(inputs_.data() + off, targets_.data() + off, B, T) / K;
    model_.backward(1.0f / float(rows * T));
  }

  StepResult result = update(loss);
  tokens_seen += uint64_t(rows) * T * config_.world;
  return result;
}

StepResult Trainer::update(double loss) {
  use_threads(config_.threads);
  const double lr = learning_rate(config_.optimizer, steps_done);
  StepResult result{loss, grad_norm(model_.grads), lr};
  const double clip = config_.optimizer.grad_clip;
  if (clip > 0) {
    const double coef = clip / (result.grad_norm + 1e-6);  // as torch.nn.utils.clip_grad_norm_
    if (coef < 1.0) scale(model_.grads, float(coef));
  }
  adamw_.update(model_, config_.optimizer, lr);
  steps_done++;
  return result;
}

}  // namespace herd
