// backends(): which compute backends this build carries. The CUDA backend is a separate
// library (libherd_cuda.so beside the addon) loaded with dlopen (engine/cuda_device.cc), so a
// CPU-only machine never needs CUDA libraries; it is listed when that library loads.
#include "binding/registry.h"
#include "engine/cuda_device.h"

namespace {

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, Napi::String::New(env, "cpu"));
  if (herd::cuda_library_loads()) out.Set(1u, Napi::String::New(env, "cuda"));
  return out;
}

// Number of CUDA devices the backend sees: 0 without a driver or GPU, as here and in CI.
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), herd::cuda_device_count());
}

// Why the CUDA library does not load ("" when it does): for `herd backends`.
Napi::Value CudaLoadError(const Napi::CallbackInfo& info) {
  std::string error;
  herd::cuda_library_loads(&error);
  return Napi::String::New(info.Env(), error);
}

}  // namespace

HERD_BINDING(InitBackends) {
  exports.Set("backends", Napi::Function::New(env, Backends));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("cudaLoadError", Napi::Function::New(env, CudaLoadError));
}
