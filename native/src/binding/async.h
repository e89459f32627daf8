// run_async(env, work, to_js): the matmul.cc pattern for any heavy call. `work` runs on a
// libuv worker thread and must not touch Napi values; `to_js` turns its result into a value
// on the JavaScript thread. A C++ exception thrown by `work` rejects the promise with its
// message.
#pragma once
#include <napi.h>

#include <exception>
#include <functional>
#include <optional>

namespace herd {

template <typename T>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<T()> work,
                std::function<Napi::Value(Napi::Env, T&)> to_js)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        to_js_(std::move(to_js)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_.emplace(work_());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    try {
      deferred_.Resolve(to_js_(Env(), *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<T()> work_;
  std::function<Napi::Value(Napi::Env, T&)> to_js_;
  std::optional<T> result_;
};

template <typename T>
Napi::Promise run_async(Napi::Env env, std::function<T()> work,
                        std::function<Napi::Value(Napi::Env, T&)> to_js) {
  auto* worker = new PromiseWorker<T>(env, std::move(work), std::move(to_js));
  worker->Queue();
  return worker->Promise();
}

// A C++ exception from a synchronous call, rethrown as a JavaScript Error.
template <typename F>
auto js_call(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

inline Napi::Int32Array to_int32_array(Napi::Env env, const std::vector<int32_t>& v) {
  auto out = Napi::Int32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), out.Data());
  return out;
}

}  // namespace herd
