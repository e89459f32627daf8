#include "engine/trainer.h"

#include <cblas.h>
#include <omp.h>

#include <cmath>
#include <stdexcept>

#include "engine/ops.h"

namespace herd {

void use_threads(int threads) {
  omp_set_num_threads(threads);
  openblas_set_num_threads(1);  // ops::gemm splits the work over OpenMP's threads itself
}

Trainer::Trainer(const TrainerConfig& config, std::shared_ptr<TokenSource> source,
                 std::shared_ptr<Collective> collective)
    : config_(config), source_(std::move(source)), collective_(std::move(collective)),
      model_(config.model), adamw_(0) {
  if (!source_) throw std::invalid_argument("trainer: no token source");
  if (collective_) {
    config_.rank = collective_->rank();
    config_.world = collective_->world();
  } else if (config_.world != 1 || config_.rank != 0) {
    throw std::invalid_argument("trainer: world size " + std::to_string(config_.world) +
                                " needs a group to average gradients with");
  }
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
  if (config_.lora.rank > 0) {
    lora_ = std::make_unique<Lora>(config_.lora, model_.tensors());
    lora_->init_adapters(config_.seed);
    std::vector<size_t> targets;
    for (auto [offset, n] : lora_->target_ranges()) targets.push_back(offset);
    model_.train_only(targets);  // the backward skips the frozen weights' gradients
    if (config_.shard_optimizer)
      throw std::invalid_argument("trainer: LoRA keeps AdamW's state for the adapters only; "
                                  "shardOptimizer does not apply to it");
  }
  adamw_ = AdamW(lora_ ? lora_->params.size() : model_.num_parameters());
  if (config_.backend == "cuda") {
    device_ = std::make_unique<DeviceModel>(config_.model, config_.cuda, config_.micro_batch,
                                            config_.seq_len, model_.params.data());
    if (collective_ && config_.world > 1) join_nccl();
  } else if (config_.backend != "cpu") {
    throw std::invalid_argument("trainer: backend '" + config_.backend + "' is not known (cpu, cuda)");
  }
}

void Trainer::join_nccl() {
  // A broadcast as a sum: rank 0 contributes the id's bytes, the others zeros; every byte
  // value is exact in float.
  unsigned char id[HERD_CUDA_NCCL_ID_BYTES] = {};
  if (config_.rank == 0) cuda_nccl_unique_id(id);
  std::vector<float> bytes(HERD_CUDA_NCCL_ID_BYTES);
  for (int i = 0; i < HERD_CUDA_NCCL_ID_BYTES; i++) bytes[i] = float(id[i]);
  collective_->all_reduce_sum(bytes.data(), bytes.size());
  for (int i = 0; i < HERD_CUDA_NCCL_ID_BYTES; i++) id[i] = static_cast<unsigned char>(bytes[i]);
  device_->attach_nccl(id, config_.rank, config_.world, config_.shard_optimizer);
}

// With LoRA the host holds the adapters and their AdamW state, and the device only the
// model's weights (which the host merges) and gradients.
void Trainer::sync_host() {
  if (!device_ || !host_stale_) return;
  device_->get_params(model_.params.data());
  device_->get_grads(model_.grads.data());
  if (!lora_) device_->get_optimizer_state(adamw_.m.data(), adamw_.v.data(), &adamw_.step_count);
  host_stale_ = false;
}

void Trainer::sync_device() {
  if (!device_stale_) return;
  device_->set_params(model_.params.data());
  if (!lora_) device_->set_optimizer_state(adamw_.m.data(), adamw_.v.data(), adamw_.step_count);
  device_stale_ = false;
}

double Trainer::draw_rows() {
  const int T = config_.seq_len, rows = config_.micro_batch * config_.accum_steps;
  const bool examples = source_->packs_examples();
  rows_.resize(size_t(rows) * (T + 1));
  if (examples) {
    learn_.resize(size_t(rows) * T);
    positions_.resize(size_t(rows) * T);
    source_->examples(uint64_t(steps_done), config_.rank, config_.world, rows, T, rows_.data(),
                      learn_.data(), positions_.data());
  } else {
    source_->batch(uint64_t(steps_done), config_.rank, config_.world, rows, T, rows_.data());
  }
  inputs_.resize(size_t(rows) * T);
  targets_.resize(size_t(rows) * T);
  double learned = 0;
  for (int r = 0; r < rows; r++)
    for (int t = 0; t < T; t++) {
      const size_t n = size_t(r) * T + t;
      const bool learns = !examples || learn_[n];
      inputs_[n] = rows_[size_t(r) * (T + 1) + t];
      targets_[n] = learns ? rows_[size_t(r) * (T + 1) + t + 1] : ops::kIgnoreTarget;
      learned += learns;
    }
  if (!examples) return learned * config_.world;
  if (collective_) {
    // Exact in float as two parts below 2^20 (a step has fewer than 2^40 tokens).
    float parts[2] = {float(std::floor(learned / 1048576.0)), float(std::fmod(learned, 1048576.0))};
    collective_->all_reduce_sum(parts, 2);
    learned = double(parts[0]) * 1048576.0 + double(parts[1]);
  }
  return learned;
}

StepResult Trainer::step(bool stop_requested) {
  use_threads(config_.threads);
  const int B = config_.micro_batch, T = config_.seq_len, K = config_.accum_steps;
  const double learned = draw_rows();  // all ranks together
  const int32_t* positions = source_->packs_examples() ? positions_.data() : nullptr;

  // The loss is the mean over the learned targets of the whole step, all ranks together: each
  // micro-batch's summed loss is scaled by world / learned (the ranks' gradients are then
  // averaged, which divides by world again), so the micro-batches' gradients simply add up.
  // Without examples every target is learned and this is 1 / (rows · T) per rank.
  const float dloss = learned > 0 ? float(config_.world / learned) : 0.0f;
  double loss = 0;
  if (lora_ && !lora_->has_base) lora_->take_base(model_.params.data());  // before step 1
  if (device_) {
    sync_device();
    device_->zero_grad();
    for (int k = 0; k < K; k++) {
      const size_t off = size_t(k) * B * T;
      const double mean = device_->forward(inputs_.data() + off, targets_.data() + off,
                                           positions ? positions + off : nullptr, B, T);
      size_t learned_here = 0;
      for (size_t n = off; n < off + size_t(B) * T; n++) learned_here += targets_[n] >= 0;
      loss += mean * double(learned_here);
      device_->backward(dloss, k == K - 1);  // the last one all-reduces
    }
  } else {
    model_.zero_grad();
    for (int k = 0; k < K; k++) {
      const size_t off = size_t(k) * B * T;
      const double mean =
          model_.forward(inputs_.data() + off, targets_.data() + off, B, T, positions ? positions + off : nullptr);
      loss += mean * double(model_.learned_targets());
      model_.backward(dloss);
    }
    if (collective_ && !lora_) average_grads_over_ranks();  // LoRA averages its adapters'
  }
  loss = learned > 0 ? loss * config_.world / learned : 0.0;  // this rank's share, × world

  bool stop = stop_requested;
  if (collective_) agree_over_ranks(loss, stop);
  StepResult result = update(loss);
  result.stop = stop;
  tokens_seen += uint64_t(B) * K * T * config_.world;
  return result;
}

void Trainer::average_grads_over_ranks() {
  // One flat buffer, one all-reduce (bucketing and overlap with backward are GPU work).
  collective_->all_reduce_sum(model_.grads.data(), model_.grads.size());
  scale(model_.grads, 1.0f / float(collective_->world()));
}

void Trainer::agree_over_ranks(double& loss, bool& stop) {
  const int world = collective_->world();
  // The loss as a float pair (value and rounding error) keeps double precision through a
  // float all-reduce; the stop flag rides along.
  const float hi = float(loss);
  float control[3] = {hi, float(loss - double(hi)), stop ? 1.0f : 0.0f};
  collective_->all_reduce_sum(control, 3);
  loss = (double(control[0]) + double(control[1])) / world;
  stop = control[2] > 0.0f;
}

StepResult Trainer::update(double loss) {
  use_threads(config_.threads);
  const double lr = learning_rate(config_.optimizer, steps_done);
  if (lora_) {
    StepResult result{loss, update_adapters(lr), lr};
    steps_done++;
    return result;
  }
  if (device_) {
    const OptimizerConfig& o = config_.optimizer;
    const herd_cuda_adamw c{lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.grad_clip};
    StepResult result{loss, device_->step(c), lr};
    host_stale_ = true;
    adamw_.step_count++;  // the device counts its own; this one is what state() reports
    steps_done++;
    return result;
  }
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

double Trainer::update_adapters(double lr) {
  if (!lora_->has_base) lora_->take_base(model_.params.data());
  const auto targets = lora_->target_ranges();
  if (device_) {
    for (auto [offset, n] : targets) device_->get_grads_range(offset, n, model_.grads.data() + offset);
    host_stale_ = true;  // the other gradients are still on the device only
  }
  lora_->project_grads(model_.grads.data());
  if (collective_ && !device_) {  // (NCCL averaged the device's gradients during backward)
    collective_->all_reduce_sum(lora_->grads.data(), lora_->grads.size());
    scale(lora_->grads, 1.0f / float(collective_->world()));
  }
  const double norm = grad_norm(lora_->grads);
  const double clip = config_.optimizer.grad_clip;
  if (clip > 0 && clip / (norm + 1e-6) < 1.0) scale(lora_->grads, float(clip / (norm + 1e-6)));
  adamw_.update(lora_->params.data(), lora_->grads.data(), lora_->tensors(), config_.optimizer, lr);
  lora_->merge(model_.params.data());
  if (device_)
    for (auto [offset, n] : targets) device_->set_params_range(offset, n, model_.params.data() + offset);
  return norm;
}

}  // namespace herd
