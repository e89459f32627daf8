// The C API (herd_cuda.h): every entry point runs under guarded() (common.cuh), which turns
// the library's exceptions into a return code and a message for herd_cuda_last_error().
#include <cstring>
#include <string>

#include "herd_cuda.h"
#include "model.cuh"

namespace {

thread_local std::string last_error;

int null_argument(const char* what) {
  last_error = std::string(what) + " is null";
  return -2;
}

}  // namespace

namespace herd::cuda {
void set_last_error(const char* message) { last_error = message; }
}  // namespace herd::cuda

using herd::cuda::guarded;

extern "C" {

const char* herd_cuda_last_error(void) { return last_error.c_str(); }

int herd_cuda_model_create(const herd_cuda_model_desc* desc, const herd_cuda_run_config* run,
                           const float* params, herd_cuda_model** out) {
  if (!desc || !run || !params || !out || !desc->layers || !desc->tensors)
    return null_argument("herd_cuda_model_create: an argument");
  return guarded([&] { *out = herd::cuda::create_model(*desc, *run, params).release(); });
}

void herd_cuda_model_destroy(herd_cuda_model* model) { delete model; }

int herd_cuda_forward(herd_cuda_model* model, const int32_t* tokens, const int32_t* targets,
                      const int32_t* positions, int B, int T, double* mean_loss) {
  if (!model || !tokens) return null_argument("herd_cuda_forward: model or tokens");
  return guarded([&] {
    const double loss = model->forward(tokens, targets, positions, B, T);
    if (mean_loss) *mean_loss = loss;
  });
}

int herd_cuda_backward(herd_cuda_model* model, float dloss, int last_micro_batch) {
  if (!model) return null_argument("herd_cuda_backward: model");
  return guarded([&] { model->backward(dloss, last_micro_batch != 0); });
}

int herd_cuda_zero_grad(herd_cuda_model* model) {
  if (!model) return null_argument("herd_cuda_zero_grad: model");
  return guarded([&] { model->zero_grad(); });
}

int herd_cuda_step(herd_cuda_model* model, const herd_cuda_adamw* c, double* grad_norm) {
  if (!model || !c) return null_argument("herd_cuda_step: model or optimizer config");
  return guarded([&] {
    const double norm = model->step(*c);
    if (grad_norm) *grad_norm = norm;
  });
}

int herd_cuda_get_params(herd_cuda_model* model, float* out) {
  if (!model || !out) return null_argument("herd_cuda_get_params: model or out");
  return guarded([&] { model->get_params(out); });
}

int herd_cuda_get_grads(herd_cuda_model* model, float* out) {
  if (!model || !out) return null_argument("herd_cuda_get_grads: model or out");
  return guarded([&] { model->get_grads(out); });
}

int herd_cuda_get_losses(herd_cuda_model* model, float* out) {
  if (!model || !out) return null_argument("herd_cuda_get_losses: model or out");
  return guarded([&] { model->get_losses(out); });
}

int herd_cuda_set_params(herd_cuda_model* model, const float* params) {
  if (!model || !params) return null_argument("herd_cuda_set_params: model or params");
  return guarded([&] { model->set_params(params); });
}

int herd_cuda_get_grads_range(herd_cuda_model* model, size_t offset, size_t n, float* out) {
  if (!model || !out) return null_argument("herd_cuda_get_grads_range: model or out");
  return guarded([&] { model->get_grads_range(offset, n, out); });
}

int herd_cuda_set_params_range(herd_cuda_model* model, size_t offset, size_t n,
                               const float* params) {
  if (!model || !params) return null_argument("herd_cuda_set_params_range: model or params");
  return guarded([&] { model->set_params_range(offset, n, params); });
}

int herd_cuda_get_optimizer_state(herd_cuda_model* model, float* m, float* v, int64_t* steps) {
  if (!model || !m || !v) return null_argument("herd_cuda_get_optimizer_state: model, m or v");
  return guarded([&] { model->get_optimizer_state(m, v, steps); });
}

int herd_cuda_set_optimizer_state(herd_cuda_model* model, const float* m, const float* v,
                                  int64_t steps) {
  if (!model || !m || !v) return null_argument("herd_cuda_set_optimizer_state: model, m or v");
  return guarded([&] { model->set_optimizer_state(m, v, steps); });
}

size_t herd_cuda_model_bytes(const herd_cuda_model* model) { return model ? model->bytes() : 0; }

int herd_cuda_synchronize(herd_cuda_model* model) {
  if (!model) return null_argument("herd_cuda_synchronize: model");
  return guarded([&] { model->synchronize(); });
}

int herd_cuda_nccl_available(void) { return herd::cuda::nccl() != nullptr; }

int herd_cuda_nccl_unique_id(unsigned char id[HERD_CUDA_NCCL_ID_BYTES]) {
  if (!id) return null_argument("herd_cuda_nccl_unique_id: id");
  return guarded([&] {
    std::string why;
    const herd::cuda::Nccl* n = herd::cuda::nccl(&why);
    if (!n) throw herd::cuda::Error("NCCL: " + why);
    herd::cuda::NcclId nid;
    herd::cuda::nccl_check(n->GetUniqueId(&nid), "ncclGetUniqueId");
    std::memcpy(id, nid.internal, HERD_CUDA_NCCL_ID_BYTES);
  });
}

int herd_cuda_nccl_attach(herd_cuda_model* model, const unsigned char id[HERD_CUDA_NCCL_ID_BYTES],
                          int rank, int world, int shard_optimizer) {
  if (!model || !id) return null_argument("herd_cuda_nccl_attach: model or id");
  return guarded([&] {
    herd::cuda::NcclId nid;
    std::memcpy(nid.internal, id, HERD_CUDA_NCCL_ID_BYTES);
    model->attach_nccl(nid, rank, world, shard_optimizer != 0);
  });
}

}  // extern "C"
