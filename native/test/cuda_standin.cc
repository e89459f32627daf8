// A stand-in for libherd_cuda.so that runs the C API (native/cuda/herd_cuda.h) on the CPU
// engine, for tests on machines without a GPU (HERD_CUDA_LIBRARY=<this library>). It proves
// the trainer's CUDA path — what it hands the backend, in which order, how checkpoints read
// and resume write the device's state — not the kernels: bench/gpu/run.sh checks those on a
// GPU against the same CPU engine. Being the CPU engine, its results must be bit-identical
// to the CPU backend's. It reports HERD_STANDIN_DEVICES devices, else those CUDA_VISIBLE_DEVICES
// lists, else one.
//
// Its "NCCL" joins the ranks of one machine through POSIX shared memory named by the id:
// gradients are summed in rank order and scaled by 1/world (what the CPU backend's Gloo
// average gives), so a data-parallel run on the stand-in must match the CPU backend's too.
// With shard_optimizer the device's weights and moments are spread over the ranks, so reading
// them is a collective: here every read waits for all ranks, and a trainer that reads them on
// one rank only fails with an error naming the read instead of passing by luck.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "../cuda/herd_cuda.h"
#include "engine/model.h"
#include "engine/optimizer.h"
#include "shm_group.h"

namespace {

thread_local std::string last_error;

int fail(const std::string& message) {
  last_error = message;
  return -1;
}

// The mean over ranks in place, summed in rank order (what the CPU backend's Gloo average
// gives for two ranks), through the group's slots.
void average(herd::test::ShmGroup& group, std::vector<float>& x) {
  const size_t bytes = x.size() * sizeof(float);
  group.reserve(bytes);
  std::memcpy(group.slot(group.rank()), x.data(), bytes);
  group.barrier("the gradient all-reduce");
  std::memcpy(x.data(), group.slot(0), bytes);
  for (int r = 1; r < group.world(); r++) {
    const float* y = reinterpret_cast<const float*>(group.slot(r));
    for (size_t i = 0; i < x.size(); i++) x[i] += y[i];
  }
  herd::scale(x, 1.0f / float(group.world()));
  group.barrier("the gradient all-reduce");  // no rank overwrites its slot while others read it
}

}  // namespace

struct herd_cuda_model {
  herd::Model<float> model;
  herd::AdamW adamw;
  int calls_backward = 0, last_micro_batches = 0;  // for the test's eyes (get_losses)
  std::unique_ptr<herd::test::ShmGroup> group;
  bool sharded = false;
  explicit herd_cuda_model(const herd::ModelConfig& c) : model(c), adamw(model.num_parameters()) {}
  // With a sharded optimizer the device's weights and moments are read by all ranks at once.
  void collective_read(const char* what) {
    if (group && sharded) group->barrier(what);
  }
};

extern "C" {

const char* herd_cuda_last_error(void) { return last_error.c_str(); }

// HERD_STANDIN_DEVICES, else as CUDA does: the entries of CUDA_VISIBLE_DEVICES (what a
// device plugin gives a container), else one.
int herd_cuda_device_count(void) {
  if (const char* n = std::getenv("HERD_STANDIN_DEVICES")) return std::atoi(n);
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!visible) return 1;
  if (!*visible) return 0;
  int count = 1;
  for (const char* c = visible; *c; c++) count += *c == ',';
  return count;
}

int herd_cuda_model_create(const herd_cuda_model_desc* d, const herd_cuda_run_config* run,
                           const float* params, herd_cuda_model** out) {
  if (run->device >= herd_cuda_device_count())
    return fail("cudaSetDevice: invalid device ordinal " + std::to_string(run->device));
  herd::ModelConfig c;
  c.dim = d->dim, c.n_layers = d->n_layers, c.n_heads = d->n_heads, c.n_kv_heads = d->n_kv_heads;
  c.ffn_hidden = d->ffn_hidden, c.vocab_size = d->vocab_size, c.max_seq_len = d->max_seq_len;
  c.norm_eps = d->norm_eps, c.rope_theta = d->rope_theta, c.tied_embeddings = d->tied_embeddings;
  auto* m = new herd_cuda_model(c);
  if (m->model.num_parameters() != d->n_params) {
    delete m;
    return fail("stand-in: the description's n_params does not match the CPU engine's layout");
  }
  std::memcpy(m->model.params.data(), params, d->n_params * sizeof(float));
  *out = m;
  return 0;
}

void herd_cuda_model_destroy(herd_cuda_model* m) { delete m; }

int herd_cuda_forward(herd_cuda_model* m, const int32_t* tokens, const int32_t* targets,
                      const int32_t* positions, int B, int T, double* mean_loss) {
  const double loss = m->model.forward(tokens, targets, B, T, positions);
  if (mean_loss) *mean_loss = loss;
  return 0;
}

int herd_cuda_backward(herd_cuda_model* m, float dloss, int last_micro_batch) {
  m->model.backward(dloss);
  if (m->group && last_micro_batch) {
    try {
      average(*m->group, m->model.grads);
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }
  m->calls_backward++;
  m->last_micro_batches += last_micro_batch;
  return 0;
}

int herd_cuda_zero_grad(herd_cuda_model* m) {
  m->model.zero_grad();
  return 0;
}

// As Trainer::update on the CPU: the norm, clipping, one AdamW step.
int herd_cuda_step(herd_cuda_model* m, const herd_cuda_adamw* c, double* grad_norm) {
  const double norm = herd::grad_norm(m->model.grads);
  if (c->grad_clip > 0) {
    const double coef = c->grad_clip / (norm + 1e-6);
    if (coef < 1.0) herd::scale(m->model.grads, float(coef));
  }
  herd::OptimizerConfig o;
  o.beta1 = c->beta1, o.beta2 = c->beta2, o.eps = c->eps, o.weight_decay = c->weight_decay;
  m->adamw.update(m->model, o, c->lr);
  if (grad_norm) *grad_norm = norm;
  return 0;
}

int herd_cuda_get_params(herd_cuda_model* m, float* out) {
  try {
    m->collective_read("get_params (sharded: every rank gathers)");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  std::memcpy(out, m->model.params.data(), m->model.params.size() * sizeof(float));
  return 0;
}

int herd_cuda_set_params(herd_cuda_model* m, const float* p) {
  std::memcpy(m->model.params.data(), p, m->model.params.size() * sizeof(float));
  return 0;
}

int herd_cuda_get_grads(herd_cuda_model* m, float* out) {
  std::memcpy(out, m->model.grads.data(), m->model.grads.size() * sizeof(float));
  return 0;
}

int herd_cuda_get_grads_range(herd_cuda_model* m, size_t offset, size_t n, float* out) {
  if (offset > m->model.grads.size() || n > m->model.grads.size() - offset)
    return fail("herd_cuda_get_grads_range: the range lies outside the parameters");
  std::memcpy(out, m->model.grads.data() + offset, n * sizeof(float));
  return 0;
}

int herd_cuda_set_params_range(herd_cuda_model* m, size_t offset, size_t n, const float* p) {
  if (offset > m->model.params.size() || n > m->model.params.size() - offset)
    return fail("herd_cuda_set_params_range: the range lies outside the parameters");
  std::memcpy(m->model.params.data() + offset, p, n * sizeof(float));
  return 0;
}

// The stand-in's counters: calls of backward, and how many were flagged the last of a step.
int herd_cuda_get_losses(herd_cuda_model* m, float* out) {
  out[0] = float(m->calls_backward);
  out[1] = float(m->last_micro_batches);
  return 0;
}

int herd_cuda_get_optimizer_state(herd_cuda_model* m, float* mo, float* v, int64_t* steps) {
  try {
    m->collective_read("get_optimizer_state (sharded: every rank gathers)");
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  std::memcpy(mo, m->adamw.m.data(), m->adamw.m.size() * sizeof(float));
  std::memcpy(v, m->adamw.v.data(), m->adamw.v.size() * sizeof(float));
  if (steps) *steps = m->adamw.step_count;
  return 0;
}

int herd_cuda_set_optimizer_state(herd_cuda_model* m, const float* mo, const float* v,
                                  int64_t steps) {
  std::memcpy(m->adamw.m.data(), mo, m->adamw.m.size() * sizeof(float));
  std::memcpy(m->adamw.v.data(), v, m->adamw.v.size() * sizeof(float));
  m->adamw.step_count = steps;
  return 0;
}

size_t herd_cuda_model_bytes(const herd_cuda_model* m) {
  return m->model.num_parameters() * 16;
}

int herd_cuda_synchronize(herd_cuda_model*) { return 0; }
int herd_cuda_nccl_available(void) { return 1; }

// A shared-memory group's name: printable and NUL-terminated.
int herd_cuda_nccl_unique_id(unsigned char* id) {
  const std::string name = herd::test::new_group_name();
  std::memset(id, 0, HERD_CUDA_NCCL_ID_BYTES);
  std::memcpy(id, name.data(), name.size());
  return 0;
}

int herd_cuda_nccl_attach(herd_cuda_model* m, const unsigned char* id, int rank, int world,
                          int shard_optimizer) {
  const char* chars = reinterpret_cast<const char*>(id);
  if (chars[0] != '/') return fail("stand-in NCCL: the id is not one herd_cuda_nccl_unique_id made");
  try {
    m->group = std::make_unique<herd::test::ShmGroup>(
        std::string(chars, strnlen(chars, HERD_CUDA_NCCL_ID_BYTES)), rank, world);
  } catch (const std::exception& e) {
    return fail(std::string("stand-in NCCL: ") + e.what());
  }
  m->sharded = shard_optimizer != 0;
  return 0;
}

}  // extern "C"
