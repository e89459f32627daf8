// backends(): which compute backends this build carries. The CUDA backend is a separate
// library (libherd_cuda.so beside the addon) loaded with dlopen, so a CPU-only machine
// never needs CUDA libraries; it is listed when that library is present and loads.
#include <dlfcn.h>

#include <string>

#include "binding/registry.h"

namespace {

std::string addonDir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&addonDir), &info) == 0 || !info.dli_fname) return ".";
  std::string path = info.dli_fname;
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Loaded once; null when the library is absent or its dependencies are missing.
void* cudaLibrary(std::string* error) {
  static std::string loadError;
  static void* handle = [] {
    std::string path = addonDir() + "/" + HERD_CUDA_LIBRARY;
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) loadError = dlerror();
    return h;
  }();
  if (error) *error = loadError;
  return handle;
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, Napi::String::New(env, "cpu"));
  if (cudaLibrary(nullptr)) out.Set(1u, Napi::String::New(env, "cuda"));
  return out;
}

// Number of CUDA devices the backend sees: 0 without a driver or GPU, as here and in CI.
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  std::string error;
  void* lib = cudaLibrary(&error);
  if (!lib) return Napi::Number::New(info.Env(), 0);
  using Fn = int (*)();
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "herd_cuda_device_count"));
  return Napi::Number::New(info.Env(), fn ? fn() : 0);
}

}  // namespace

HERD_BINDING(InitBackends) {
  exports.Set("backends", Napi::Function::New(env, Backends));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
}
