// matmul(a, b, m, k, n) -> Promise<Float32Array>: the CPU matrix product, computed on a
// worker thread so the JavaScript thread stays free. The pattern every heavy call follows:
// validate on the JS thread, copy nothing, compute in Execute, resolve in OnOK.
#include "binding/registry.h"
#include "cpu/matmul.h"

namespace {

class MatmulWorker : public Napi::AsyncWorker {
 public:
  MatmulWorker(Napi::Env env, Napi::Float32Array a, Napi::Float32Array b, int m, int k, int n)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        aRef_(Napi::Persistent(a)),
        bRef_(Napi::Persistent(b)),
        a_(a.Data()),
        b_(b.Data()),
        m_(m),
        k_(k),
        n_(n),
        c_(static_cast<size_t>(m) * n) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { herd::cpu::matmul(a_, b_, c_.data(), m_, k_, n_); }

  void OnOK() override {
    auto out = Napi::Float32Array::New(Env(), c_.size());
    std::copy(c_.begin(), c_.end(), out.Data());
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Float32Array> aRef_, bRef_;  // keep inputs alive while computing
  const float* a_;
  const float* b_;
  int m_, k_, n_;
  std::vector<float> c_;
};

Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5 || !info[0].IsTypedArray() || !info[1].IsTypedArray())
    throw Napi::TypeError::New(env, "matmul(a: Float32Array, b: Float32Array, m, k, n)");
  auto a = info[0].As<Napi::TypedArray>();
  auto b = info[1].As<Napi::TypedArray>();
  if (a.TypedArrayType() != napi_float32_array || b.TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "matmul: a and b must be Float32Array");
  int64_t m = info[2].As<Napi::Number>().Int64Value();
  int64_t k = info[3].As<Napi::Number>().Int64Value();
  int64_t n = info[4].As<Napi::Number>().Int64Value();
  if (m <= 0 || k <= 0 || n <= 0 || m > INT32_MAX || k > INT32_MAX || n > INT32_MAX)
    throw Napi::RangeError::New(env, "matmul: m, k and n must be positive 32-bit integers");
  if (a.ElementLength() != static_cast<size_t>(m * k))
    throw Napi::RangeError::New(env, "matmul: a has " + std::to_string(a.ElementLength()) +
                                         " elements, expected m*k = " + std::to_string(m * k));
  if (b.ElementLength() != static_cast<size_t>(k * n))
    throw Napi::RangeError::New(env, "matmul: b has " + std::to_string(b.ElementLength()) +
                                         " elements, expected k*n = " + std::to_string(k * n));
  auto* worker = new MatmulWorker(env, a.As<Napi::Float32Array>(), b.As<Napi::Float32Array>(),
                                  int(m), int(k), int(n));
  worker->Queue();
  return worker->Promise();
}

}  // namespace

HERD_BINDING(InitMatmul) { exports.Set("matmul", Napi::Function::New(env, Matmul)); }
