// joinGroup(options) -> Promise<Group>: this process joins a data-parallel group over Gloo's
// TCP transport (rank 0 serves the rendezvous store). A group object carries rank, world,
// allReduceSum(Float32Array) -> Promise<Float32Array> and close(); pass it to createTrainer
// as options.group. Joining and collectives run on Node's worker pool and time out with an
// error instead of blocking.
#include "binding/dist.h"

#include <chrono>

#include "binding/async.h"
#include "binding/registry.h"
#include "dist/gloo_collective.h"

namespace herd {

namespace {

// Marks the externals this file made, so a foreign object is never taken for a group.
constexpr napi_type_tag kGroupTag = {0x6865726467726f75ull, 0x70676c6f6f763031ull};

struct GroupHandle {
  std::shared_ptr<GlooCollective> collective;
};

GroupHandle& handle_of(const Napi::Value& value, const std::string& where) {
  Napi::Env env = value.Env();
  if (!value.IsObject())
    throw Napi::TypeError::New(env, where + " must be a group from joinGroup()");
  Napi::Value h = value.As<Napi::Object>().Get("handle");
  bool tagged = false;
  if (h.IsExternal()) napi_check_object_type_tag(env, h, &kGroupTag, &tagged);
  if (!tagged) throw Napi::TypeError::New(env, where + " must be a group from joinGroup()");
  return *h.As<Napi::External<GroupHandle>>().Data();
}

int int_option(const Napi::Object& o, const char* key, int lo, int hi) {
  Napi::Value v = o.Get(key);
  double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!v.IsNumber() || x != double(int64_t(x)) || x < lo || x > hi)
    throw Napi::RangeError::New(o.Env(), std::string("group options.") + key +
                                             " must be an integer in [" + std::to_string(lo) +
                                             ", " + std::to_string(hi) + "]");
  return int(x);
}

std::string string_option(const Napi::Object& o, const char* key, const char* fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && fallback) return fallback;
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty())
    throw Napi::TypeError::New(o.Env(), std::string("group options.") + key +
                                            " must be a non-empty string");
  return v.As<Napi::String>().Utf8Value();
}

GroupConfig read_group_config(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsObject())
    throw Napi::TypeError::New(info.Env(),
                               "joinGroup({ rank, world, host, port, bindHost?, timeoutMs? })");
  Napi::Object o = info[0].As<Napi::Object>();
  GroupConfig c;
  c.world = int_option(o, "world", 1, 65536);
  c.rank = int_option(o, "rank", 0, c.world - 1);
  c.store_host = string_option(o, "host", nullptr);
  c.store_port = int_option(o, "port", 1, 65535);
  c.bind_host = string_option(o, "bindHost", "127.0.0.1");
  if (!o.Get("timeoutMs").IsUndefined())
    c.timeout = std::chrono::milliseconds(int_option(o, "timeoutMs", 1, 2147483647));
  return c;
}

// allReduceSum(data) on `this` group: the sum over ranks, as a new Float32Array.
Napi::Value all_reduce_sum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "allReduceSum(data: Float32Array)");
  std::shared_ptr<Collective> collective = collective_of(info.This(), "allReduceSum: this");
  auto in = info[0].As<Napi::Float32Array>();
  auto data = std::make_shared<std::vector<float>>(in.Data(), in.Data() + in.ElementLength());
  return run_async<std::shared_ptr<std::vector<float>>>(
      env,
      [collective, data] {
        collective->all_reduce_sum(data->data(), data->size());
        return data;
      },
      [](Napi::Env env, std::shared_ptr<std::vector<float>>& out) -> Napi::Value {
        auto result = Napi::Float32Array::New(env, out->size());
        std::copy(out->begin(), out->end(), result.Data());
        return result;
      });
}

// The JavaScript face of a joined group. Its `handle` owns one reference to the collective;
// trainers made with the group hold their own, so close() never pulls it from under them.
Napi::Object group_object(Napi::Env env, std::shared_ptr<GlooCollective> collective) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", collective->rank());
  o.Set("world", collective->world());
  auto handle = Napi::External<GroupHandle>::New(
      env, new GroupHandle{std::move(collective)}, [](Napi::Env, GroupHandle* h) { delete h; });
  napi_type_tag_object(env, handle, &kGroupTag);
  o.Set("handle", handle);
  o.Set("allReduceSum", Napi::Function::New(env, all_reduce_sum));
  o.Set("close", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
          handle_of(info.This(), "close: this").collective.reset();
          return info.Env().Undefined();
        }));
  return o;
}

}  // namespace

std::shared_ptr<Collective> collective_of(const Napi::Value& value, const std::string& where) {
  auto& h = handle_of(value, where);
  if (!h.collective) throw Napi::Error::New(value.Env(), where + ": the group is closed");
  return h.collective;
}

}  // namespace herd

HERD_BINDING(InitDist) {
  exports.Set("joinGroup", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                herd::GroupConfig config = herd::read_group_config(info);
                return herd::run_async<std::shared_ptr<herd::GlooCollective>>(
                    info.Env(),
                    [config] { return std::make_shared<herd::GlooCollective>(config); },
                    [](Napi::Env env, std::shared_ptr<herd::GlooCollective>& c) -> Napi::Value {
                      return herd::group_object(env, c);
                    });
              }));
}
