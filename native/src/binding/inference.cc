// createInference({ model, threads }) -> Inference: the KV-cache inference engine
// (engine/inference.h) as a JavaScript object. Weights go in with setTensors (the same names
// and sizes as the trainer's); score, perplexity, generate and logits run on Node's worker
// pool and return Promises; one heavy call at a time per object.
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "binding/async.h"
#include "binding/registry.h"
#include "engine/inference.h"

namespace {

using herd::Inference;

int intOf(const Napi::Object& o, const char* key, const std::string& where, int fallback,
          bool required = false) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), where + "." + key + " must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (x != double(int64_t(x)) || x < 0 || x > 2147483647.0)
    throw Napi::RangeError::New(o.Env(), where + "." + key + " must be a non-negative integer");
  return int(x);
}

double numberOf(const Napi::Object& o, const char* key, const std::string& where, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::vector<int32_t> tokensOf(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, what + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

class InferenceWrap : public Napi::ObjectWrap<InferenceWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Inference",
                       {InstanceMethod("setTensors", &InferenceWrap::SetTensors),
                        InstanceMethod("tensorInfo", &InferenceWrap::TensorInfo),
                        InstanceMethod("score", &InferenceWrap::Score),
                        InstanceMethod("perplexity", &InferenceWrap::Perplexity),
                        InstanceMethod("generate", &InferenceWrap::Generate),
                        InstanceMethod("generateSamples", &InferenceWrap::GenerateSamples),
                        InstanceMethod("logits", &InferenceWrap::Logits)});
  }

  InferenceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InferenceWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "createInference({ model, threads })");
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value mv = o.Get("model");
    if (!mv.IsObject()) throw Napi::TypeError::New(env, "options.model must be an object");
    Napi::Object m = mv.As<Napi::Object>();
    herd::ModelConfig c;
    c.dim = intOf(m, "dim", "model", 0, true);
    c.n_layers = intOf(m, "nLayers", "model", 0, true);
    c.n_heads = intOf(m, "nHeads", "model", 0, true);
    c.n_kv_heads = intOf(m, "nKvHeads", "model", c.n_heads);
    c.ffn_hidden = intOf(m, "ffnHidden", "model", 0, true);
    c.vocab_size = intOf(m, "vocabSize", "model", 0, true);
    c.max_seq_len = intOf(m, "maxSeqLen", "model", 0, true);
    c.norm_eps = numberOf(m, "normEps", "model", 1e-5);
    c.rope_theta = numberOf(m, "ropeTheta", "model", 10000.0);
    c.tied_embeddings = m.Get("tiedEmbeddings").ToBoolean();
    int threads = intOf(o, "threads", "options", 1);
    herd::js_call(env, [&] {
      inference_ = std::make_unique<Inference>(c, threads);
      return 0;
    });
  }

 private:
  std::unique_ptr<Inference> inference_;
  bool busy_ = false;

  void checkIdle(Napi::Env env) {
    if (busy_) throw Napi::Error::New(env, "inference is busy: await the previous call first");
  }

  // Runs work off the JS thread, marking the object busy (and referenced, so it outlives the
  // work) until it settles. The work's exception travels back as a message and is thrown on
  // the JS thread, where busy and the reference are released first.
  template <typename T>
  Napi::Promise async(Napi::Env env, std::function<T()> work,
                      std::function<Napi::Value(Napi::Env, T&)> to_js) {
    checkIdle(env);
    busy_ = true;
    Ref();
    using Outcome = std::pair<std::optional<T>, std::string>;
    std::function<Outcome()> guarded = [work]() -> Outcome {
      try {
        return {work(), ""};
      } catch (const std::exception& e) {
        return {std::nullopt, e.what()};
      }
    };
    std::function<Napi::Value(Napi::Env, Outcome&)> done = [this, to_js](Napi::Env e, Outcome& r) {
      busy_ = false;
      Unref();
      if (!r.first) throw Napi::Error::New(e, r.second);
      return to_js(e, *r.first);
    };
    return herd::run_async<Outcome>(env, guarded, done);
  }

  Napi::Value TensorInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& t : inference_->tensors()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      Napi::Array shape = Napi::Array::New(env);
      for (uint32_t k = 0; k < t.shape.size(); k++) shape.Set(k, double(t.shape[k]));
      o.Set("shape", shape);
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value SetTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "setTensors(tensors: Record<string, Float32Array>)");
    Napi::Object map = info[0].As<Napi::Object>();
    for (const auto& t : inference_->tensors()) {
      Napi::Value v = map.Get(t.name);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw Napi::TypeError::New(env, "setTensors: tensor " + t.name + " is missing or not a Float32Array");
      if (v.As<Napi::Float32Array>().ElementLength() != t.size)
        throw Napi::RangeError::New(env, "setTensors: tensor " + t.name + " has " +
                                             std::to_string(v.As<Napi::Float32Array>().ElementLength()) +
                                             " elements, expected " + std::to_string(t.size));
    }
    for (const auto& t : inference_->tensors()) {
      auto a = map.Get(t.name).As<Napi::Float32Array>();
      std::memcpy(inference_->params.data() + t.offset, a.Data(), t.size * sizeof(float));
    }
    return env.Undefined();
  }

  // score([{ context: Int32Array, continuation: Int32Array }]) ->
  //   Promise<[{ logprob, greedy, tokens, truncated }]>
  Napi::Value Score(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsArray())
      throw Napi::TypeError::New(env, "score(requests: { context, continuation }[])");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<herd::ScoreRequest> reqs(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsObject()) throw Napi::TypeError::New(env, "score: request " + std::to_string(i) + " is not an object");
      Napi::Object o = v.As<Napi::Object>();
      reqs[i].context = tokensOf(env, o.Get("context"), "score: request.context");
      reqs[i].continuation = tokensOf(env, o.Get("continuation"), "score: request.continuation");
    }
    Inference* inf = inference_.get();
    return async<std::vector<herd::ScoreResult>>(
        env, [inf, reqs]() { return inf->score(reqs); },
        [](Napi::Env e, std::vector<herd::ScoreResult>& rs) -> Napi::Value {
          Napi::Array out = Napi::Array::New(e, rs.size());
          for (uint32_t i = 0; i < rs.size(); i++) {
            Napi::Object o = Napi::Object::New(e);
            o.Set("logprob", rs[i].logprob);
            o.Set("greedy", rs[i].greedy);
            o.Set("tokens", rs[i].tokens);
            o.Set("truncated", rs[i].truncated);
            out.Set(i, o);
          }
          return out;
        });
  }

  // perplexity(tokens, window, stride) -> Promise<{ nll, tokens }>
  Napi::Value Perplexity(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[1].IsNumber() || !info[2].IsNumber())
      throw Napi::TypeError::New(env, "perplexity(tokens: Int32Array, window: number, stride: number)");
    auto tokens = tokensOf(env, info[0], "perplexity: tokens");
    int window = info[1].As<Napi::Number>().Int32Value(), stride = info[2].As<Napi::Number>().Int32Value();
    Inference* inf = inference_.get();
    return async<herd::PerplexityResult>(
        env, [inf, tokens, window, stride]() { return inf->perplexity(tokens, window, stride); },
        [](Napi::Env e, herd::PerplexityResult& r) -> Napi::Value {
          Napi::Object o = Napi::Object::New(e);
          o.Set("nll", r.nll);
          o.Set("tokens", double(r.tokens));
          return o;
        });
  }

  static herd::SampleOptions sampleOptions(Napi::Env env, Napi::Object o) {
    herd::SampleOptions so;
    so.max_new_tokens = intOf(o, "maxNewTokens", "options", 64);
    so.temperature = numberOf(o, "temperature", "options", 0);
    so.top_p = numberOf(o, "topP", "options", 1.0);
    so.seed = uint64_t(numberOf(o, "seed", "options", 0));
    so.samples = intOf(o, "samples", "options", 1);
    if (!o.Get("stop").IsUndefined()) so.stop = tokensOf(env, o.Get("stop"), "options.stop");
    if (!o.Get("stopSequences").IsUndefined()) {
      if (!o.Get("stopSequences").IsArray())
        throw Napi::TypeError::New(env, "options.stopSequences must be an array of Int32Array");
      Napi::Array seqs = o.Get("stopSequences").As<Napi::Array>();
      for (uint32_t i = 0; i < seqs.Length(); i++)
        so.stop_sequences.push_back(tokensOf(env, seqs.Get(i), "options.stopSequences[i]"));
    }
    return so;
  }

  // generate(prompt, { maxNewTokens, temperature, topP, seed, stop, stopSequences })
  //   -> Promise<Int32Array>
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsObject())
      throw Napi::TypeError::New(env, "generate(prompt: Int32Array, options)");
    auto prompt = tokensOf(env, info[0], "generate: prompt");
    herd::SampleOptions so = sampleOptions(env, info[1].As<Napi::Object>());
    Inference* inf = inference_.get();
    return async<std::vector<int32_t>>(
        env, [inf, prompt, so]() { return inf->generate(prompt, so); },
        [](Napi::Env e, std::vector<int32_t>& r) -> Napi::Value { return herd::to_int32_array(e, r); });
  }

  // generateSamples(prompt, { …generate's options, samples }) -> Promise<Int32Array[]>: the
  // prompt computed once, `samples` outputs drawn from it
  Napi::Value GenerateSamples(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsObject())
      throw Napi::TypeError::New(env, "generateSamples(prompt: Int32Array, options)");
    auto prompt = tokensOf(env, info[0], "generateSamples: prompt");
    herd::SampleOptions so = sampleOptions(env, info[1].As<Napi::Object>());
    Inference* inf = inference_.get();
    return async<std::vector<std::vector<int32_t>>>(
        env, [inf, prompt, so]() { return inf->generate_samples(prompt, so); },
        [](Napi::Env e, std::vector<std::vector<int32_t>>& r) -> Napi::Value {
          Napi::Array a = Napi::Array::New(e, r.size());
          for (size_t i = 0; i < r.size(); i++) a.Set(uint32_t(i), herd::to_int32_array(e, r[i]));
          return a;
        });
  }

  // logits(tokens, chunk) -> Promise<Float32Array [n, vocab]> through the cache, chunk at a time
  Napi::Value Logits(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2 || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "logits(tokens: Int32Array, chunk: number)");
    auto tokens = tokensOf(env, info[0], "logits: tokens");
    int chunk = info[1].As<Napi::Number>().Int32Value();
    Inference* inf = inference_.get();
    return async<std::vector<float>>(
        env, [inf, tokens, chunk]() { return inf->logits_by_chunks(tokens, chunk); },
        [](Napi::Env e, std::vector<float>& r) -> Napi::Value {
          auto out = Napi::Float32Array::New(e, r.size());
          std::copy(r.begin(), r.end(), out.Data());
          return out;
        });
  }
};

Napi::FunctionReference* constructor = nullptr;

Napi::Value CreateInference(const Napi::CallbackInfo& info) {
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); i++) args.push_back(info[i]);
  return constructor->New(args);
}

}  // namespace

HERD_BINDING(InitInference) {
  constructor = new Napi::FunctionReference(Napi::Persistent(InferenceWrap::Define(env)));
  exports.Set("createInference", Napi::Function::New(env, CreateInference));
}
