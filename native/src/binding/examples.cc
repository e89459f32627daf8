// ExampleLoader for JavaScript: the rows instruction fine-tuning trains on (tokens, learn
// mask, positions), for `herd data inspect`-style tools and the packing tests. Training itself
// creates its loader inside the trainer (source kind "examples", binding/engine.cc).
#include "binding/async.h"
#include "binding/registry.h"
#include "binding/data.h"
#include "data/examples.h"

namespace {

using herd::data::ExampleLoader;
using herd::data::ExampleOptions;

}  // namespace

namespace herd {
data::ExampleOptions read_example_options(const Napi::Object& o, const std::string& where) {
  Napi::Env env = o.Env();
  data::ExampleOptions opt;
  if (o.Get("folder").IsString()) opt.folder = o.Get("folder").As<Napi::String>().Utf8Value();
  if (o.Get("shards").IsArray()) {
    auto a = o.Get("shards").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) opt.shards.push_back(a.Get(i).ToString());
  }
  if (opt.folder.empty() && opt.shards.empty())
    throw Napi::TypeError::New(env, where + ": give folder or shards (the example shard files)");
  if (o.Get("seed").IsNumber()) opt.seed = uint64_t(o.Get("seed").As<Napi::Number>().Int64Value());
  return opt;
}
}  // namespace herd

namespace {

class ExampleWrap : public Napi::ObjectWrap<ExampleWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExampleLoader",
                       {InstanceMethod<&ExampleWrap::Rows>("rows"),
                        InstanceMethod<&ExampleWrap::RowsInEpoch>("rowsInEpoch"),
                        InstanceMethod<&ExampleWrap::SaveState>("saveState"),
                        InstanceMethod<&ExampleWrap::LoadState>("loadState"),
                        InstanceAccessor<&ExampleWrap::ExampleCount>("exampleCount"),
                        InstanceAccessor<&ExampleWrap::VocabSize>("vocabSize")});
  }

  // new ExampleLoader({ folder | shards, seed })
  explicit ExampleWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExampleWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "new ExampleLoader({ folder | shards, seed? })");
    ExampleOptions opt = herd::read_example_options(info[0].As<Napi::Object>(), "ExampleLoader");
    loader_ = herd::js_call(env, [&] { return std::make_shared<ExampleLoader>(opt); });
  }

 private:
  // rows(step, rank, world, batch, seqLen) -> { tokens: batch·(seqLen+1), learn, positions:
  // batch·seqLen each }, synchronously (a few rows).
  Napi::Value Rows(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const char* usage = "rows(step, rank, world, batch, seqLen)";
    if (info.Length() < 5) throw Napi::TypeError::New(env, usage);
    for (size_t i = 0; i < 5; i++)
      if (!info[i].IsNumber()) throw Napi::TypeError::New(env, usage);
    const int64_t step = info[0].As<Napi::Number>().Int64Value();
    const int rank = info[1].As<Napi::Number>().Int32Value(), world = info[2].As<Napi::Number>().Int32Value();
    const int batch = info[3].As<Napi::Number>().Int32Value(), seq = info[4].As<Napi::Number>().Int32Value();
    if (step < 0 || batch <= 0 || seq <= 0 || world <= 0 || rank < 0 || rank >= world)
      throw Napi::RangeError::New(env, "rows: need step >= 0, 0 <= rank < world, batch > 0, seqLen > 0");
    std::vector<int32_t> tokens(size_t(batch) * (seq + 1)), positions(size_t(batch) * seq);
    std::vector<uint8_t> learn(size_t(batch) * seq);
    herd::js_call(env, [&] {
      loader_->examples(uint64_t(step), rank, world, batch, seq, tokens.data(), learn.data(),
                        positions.data());
    });
    auto o = Napi::Object::New(env);
    o.Set("tokens", herd::to_int32_array(env, tokens));
    o.Set("positions", herd::to_int32_array(env, positions));
    auto l = Napi::Uint8Array::New(env, learn.size());
    std::copy(learn.begin(), learn.end(), l.Data());
    o.Set("learn", l);
    return o;
  }

  Napi::Value RowsInEpoch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "rowsInEpoch(epoch, seqLen)");
    const int64_t epoch = info[0].As<Napi::Number>().Int64Value();
    const int seq = info[1].As<Napi::Number>().Int32Value();
    if (epoch < 0 || seq <= 0) throw Napi::RangeError::New(env, "rowsInEpoch: epoch >= 0, seqLen > 0");
    return Napi::Number::New(env, double(loader_->rows_in_epoch(uint64_t(epoch), seq)));
  }

  Napi::Value SaveState(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), loader_->save_state());
  }

  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadState(state: string)");
    std::string s = info[0].As<Napi::String>();
    herd::js_call(env, [&] { loader_->load_state(s); });
    return env.Undefined();
  }

  Napi::Value ExampleCount(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(loader_->example_count()));
  }
  Napi::Value VocabSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), loader_->vocab_size());
  }

  std::shared_ptr<ExampleLoader> loader_;
};

}  // namespace

HERD_BINDING(InitExamples) { exports.Set("ExampleLoader", ExampleWrap::Define(env)); }
