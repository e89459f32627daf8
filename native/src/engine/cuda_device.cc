#include "engine/cuda_device.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace herd {

CudaModelDesc::CudaModelDesc(const ModelConfig& c) : layout(c) {
  for (const auto& L : layout.layers)
    layers.push_back({L.attn_norm, L.wq, L.wk, L.wv, L.wo, L.ffn_norm, L.w1, L.w2, L.w3});
  for (const auto& t : layout.tensors) tensors.push_back({t.offset, t.size, t.decay ? 1 : 0});
  desc = {c.dim,         c.n_layers,     c.n_heads,      c.n_kv_heads,   c.ffn_hidden,
          c.vocab_size,  c.max_seq_len,  c.norm_eps,     c.rope_theta,   c.tied_embeddings,
          layout.size(), layout.tok_embeddings, layout.norm, layout.output, layers.data(),
          tensors.data(), int(tensors.size())};
}

namespace {

// The C API's entry points, resolved once from the library.
struct CudaApi {
  decltype(&herd_cuda_last_error) last_error;
  decltype(&herd_cuda_device_count) device_count;
  decltype(&herd_cuda_model_create) create;
  decltype(&herd_cuda_model_destroy) destroy;
  decltype(&herd_cuda_forward) forward;
  decltype(&herd_cuda_backward) backward;
  decltype(&herd_cuda_zero_grad) zero_grad;
  decltype(&herd_cuda_step) step;
  decltype(&herd_cuda_get_params) get_params;
  decltype(&herd_cuda_set_params) set_params;
  decltype(&herd_cuda_get_grads) get_grads;
  decltype(&herd_cuda_get_grads_range) get_grads_range;
  decltype(&herd_cuda_set_params_range) set_params_range;
  decltype(&herd_cuda_get_optimizer_state) get_state;
  decltype(&herd_cuda_set_optimizer_state) set_state;
  decltype(&herd_cuda_model_bytes) bytes;
  decltype(&herd_cuda_nccl_unique_id) nccl_unique_id;
  decltype(&herd_cuda_nccl_attach) nccl_attach;
};

std::string addon_dir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addon_dir), &info) == 0 || !info.dli_fname) return ".";
  std::string path = info.dli_fname;
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Null when the library is missing, does not load, or lacks an entry point; `why` says which.
const CudaApi* cuda_api(std::string* why) {
  static std::once_flag once;
  static CudaApi api;
  static const CudaApi* loaded = nullptr;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = cuda_library_path();
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      error = dlerror();
      return;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (!fn && error.empty()) error = path + ": no symbol " + name + " (an older library?)";
    };
    sym(api.last_error, "herd_cuda_last_error");
    sym(api.device_count, "herd_cuda_device_count");
    sym(api.create, "herd_cuda_model_create");
    sym(api.destroy, "herd_cuda_model_destroy");
    sym(api.forward, "herd_cuda_forward");
    sym(api.backward, "herd_cuda_backward");
    sym(api.zero_grad, "herd_cuda_zero_grad");
    sym(api.step, "herd_cuda_step");
    sym(api.get_params, "herd_cuda_get_params");
    sym(api.set_params, "herd_cuda_set_params");
    sym(api.get_grads, "herd_cuda_get_grads");
    sym(api.get_grads_range, "herd_cuda_get_grads_range");
    sym(api.set_params_range, "herd_cuda_set_params_range");
    sym(api.get_state, "herd_cuda_get_optimizer_state");
    sym(api.set_state, "herd_cuda_set_optimizer_state");
    sym(api.bytes, "herd_cuda_model_bytes");
    sym(api.nccl_unique_id, "herd_cuda_nccl_unique_id");
    sym(api.nccl_attach, "herd_cuda_nccl_attach");
    if (error.empty()) loaded = &api;
  });
  if (why) *why = error;
  return loaded;
}

const CudaApi& api() {
  std::string why;
  const CudaApi* a = cuda_api(&why);
  if (!a) throw std::runtime_error("the CUDA backend is not available: " + why);
  return *a;
}

// Throws with the library's message when a call failed.
void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string("CUDA backend: ") + what + ": " + api().last_error());
}

}  // namespace

std::string cuda_library_path() {
  const char* env = std::getenv("HERD_CUDA_LIBRARY");
  if (env && *env) return env;
  return addon_dir() + "/libherd_cuda.so";
}

bool cuda_library_loads(std::string* error) { return cuda_api(error) != nullptr; }

int cuda_device_count() {
  const CudaApi* a = cuda_api(nullptr);
  return a ? a->device_count() : 0;
}

DeviceModel::DeviceModel(const ModelConfig& config, const CudaRunOptions& run, int micro_batch,
                         int seq_len, const float* params)
    : desc_(config) {
  const int devices = api().device_count();
  if (run.device < 0 || run.device >= devices)
    throw std::runtime_error("CUDA backend: device " + std::to_string(run.device) + " does not exist (" +
                             std::to_string(devices) + " CUDA device(s) visible)");
  herd_cuda_run_config rc{run.device,       micro_batch,           seq_len, run.bf16 ? 1 : 0,
                          run.recompute ? 1 : 0, run.deterministic ? 1 : 0};
  check(api().create(&desc_.desc, &rc, params, &model_), "creating the model");
}

DeviceModel::~DeviceModel() {
  if (model_) api().destroy(model_);
}

double DeviceModel::forward(const int32_t* tokens, const int32_t* targets,
                            const int32_t* positions, int B, int T) {
  double loss = 0;
  check(api().forward(model_, tokens, targets, positions, B, T, &loss), "forward");
  return loss;
}

void DeviceModel::backward(float dloss, bool last_micro_batch) {
  check(api().backward(model_, dloss, last_micro_batch ? 1 : 0), "backward");
}

void DeviceModel::zero_grad() { check(api().zero_grad(model_), "zero_grad"); }

double DeviceModel::step(const herd_cuda_adamw& c) {
  double norm = 0;
  check(api().step(model_, &c, &norm), "AdamW step");
  return norm;
}

void DeviceModel::get_params(float* out) { check(api().get_params(model_, out), "reading the weights"); }
void DeviceModel::set_params(const float* p) { check(api().set_params(model_, p), "writing the weights"); }
void DeviceModel::get_grads(float* out) { check(api().get_grads(model_, out), "reading the gradients"); }
void DeviceModel::get_grads_range(size_t offset, size_t n, float* out) {
  check(api().get_grads_range(model_, offset, n, out), "reading gradients");
}
void DeviceModel::set_params_range(size_t offset, size_t n, const float* params) {
  check(api().set_params_range(model_, offset, n, params), "writing weights");
}

void DeviceModel::get_optimizer_state(float* m, float* v, int64_t* steps) {
  check(api().get_state(model_, m, v, steps), "reading AdamW's state");
}

void DeviceModel::set_optimizer_state(const float* m, const float* v, int64_t steps) {
  check(api().set_state(model_, m, v, steps), "writing AdamW's state");
}

void DeviceModel::attach_nccl(const unsigned char id[HERD_CUDA_NCCL_ID_BYTES], int rank, int world,
                              bool shard_optimizer) {
  check(api().nccl_attach(model_, id, rank, world, shard_optimizer ? 1 : 0), "joining NCCL");
}

size_t DeviceModel::device_bytes() const { return api().bytes(model_); }

void cuda_nccl_unique_id(unsigned char id[HERD_CUDA_NCCL_ID_BYTES]) {
  check(api().nccl_unique_id(id), "making the NCCL id");
}

}  // namespace herd
