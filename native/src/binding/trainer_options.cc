// A trainer's options as JavaScript gives them (native/engine.ts's TrainerOptions), read into
// the engine's TrainerConfig and TokenSource; every error names the field.
#include "binding/trainer_options.h"

#include <cmath>

#include "binding/data.h"
#include "data/examples.h"
#include "engine/text_source.h"

namespace herd::binding {

Napi::Object objectField(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject())
    throw Napi::TypeError::New(o.Env(), where + "." + key + " must be an object");
  return v.As<Napi::Object>();
}

double numberField(const Napi::Object& o, const char* key, const std::string& where,
                   std::optional<double> fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && fallback) return *fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int intField(const Napi::Object& o, const char* key, const std::string& where,
             std::optional<int> fallback) {
  double x = numberField(o, key, where, fallback ? std::optional<double>(*fallback) : std::nullopt);
  if (x != double(int64_t(x)) || x < 0 || x > 2147483647.0)
    throw Napi::RangeError::New(o.Env(), where + "." + key + " must be a non-negative integer");
  return int(x);
}

// Seeds are any integer JavaScript represents exactly (0 ≤ seed < 2^53).
uint64_t seedField(const Napi::Object& o, const char* key, const std::string& where) {
  double x = numberField(o, key, where, 0.0);
  if (x != double(int64_t(x)) || x < 0 || x > 9007199254740991.0)
    throw Napi::RangeError::New(o.Env(), where + "." + key + " must be an integer in [0, 2^53)");
  return uint64_t(x);
}

herd::TrainerConfig read_trainer_config(const Napi::Object& o) {
  herd::TrainerConfig c;
  Napi::Object m = objectField(o, "model", "options");
  c.model.dim = intField(m, "dim", "model");
  c.model.n_layers = intField(m, "nLayers", "model");
  c.model.n_heads = intField(m, "nHeads", "model");
  c.model.n_kv_heads = intField(m, "nKvHeads", "model");
  c.model.ffn_hidden = intField(m, "ffnHidden", "model");
  c.model.vocab_size = intField(m, "vocabSize", "model");
  c.model.max_seq_len = intField(m, "maxSeqLen", "model");
  c.model.norm_eps = numberField(m, "normEps", "model", 1e-5);
  c.model.rope_theta = numberField(m, "ropeTheta", "model", 10000.0);
  c.model.tied_embeddings = m.Get("tiedEmbeddings").ToBoolean();
  Napi::Object op = objectField(o, "optimizer", "options");
  c.optimizer.peak_lr = numberField(op, "peakLr", "optimizer");
  c.optimizer.min_lr_ratio = numberField(op, "minLrRatio", "optimizer", 0.1);
  c.optimizer.warmup_steps = intField(op, "warmupSteps", "optimizer", 2000);
  c.optimizer.total_steps = intField(op, "totalSteps", "optimizer");
  c.optimizer.beta1 = numberField(op, "beta1", "optimizer", 0.9);
  c.optimizer.beta2 = numberField(op, "beta2", "optimizer", 0.95);
  c.optimizer.eps = numberField(op, "eps", "optimizer", 1e-8);
  c.optimizer.weight_decay = numberField(op, "weightDecay", "optimizer", 0.1);
  c.optimizer.grad_clip = numberField(op, "gradClip", "optimizer", 1.0);
  c.seq_len = intField(o, "seqLen", "options");
  c.micro_batch = intField(o, "microBatch", "options", 1);
  c.accum_steps = intField(o, "accumSteps", "options", 1);
  c.seed = seedField(o, "seed", "options");
  c.threads = intField(o, "threads", "options", 1);
  Napi::Value backend = o.Get("backend");
  if (!backend.IsUndefined()) {
    if (!backend.IsString()) throw Napi::TypeError::New(o.Env(), "options.backend must be a string");
    c.backend = backend.As<Napi::String>().Utf8Value();
  }
  c.cuda.device = intField(o, "device", "options", 0);
  Napi::Value precision = o.Get("precision");
  const std::string p = precision.IsUndefined() ? "bf16" : precision.ToString().Utf8Value();
  if (p != "bf16" && p != "fp32")
    throw Napi::TypeError::New(o.Env(), "options.precision must be bf16 or fp32, not " + p);
  c.cuda.bf16 = p == "bf16";
  c.cuda.recompute = o.Get("recompute").ToBoolean();
  c.cuda.deterministic = o.Get("deterministic").ToBoolean();
  c.shard_optimizer = o.Get("shardOptimizer").ToBoolean();
  Napi::Value lora = o.Get("lora");
  if (!lora.IsUndefined()) {
    Napi::Object l = objectField(o, "lora", "options");
    c.lora.rank = intField(l, "rank", "lora");
    if (c.lora.rank == 0) throw Napi::RangeError::New(o.Env(), "lora.rank must be positive");
    c.lora.alpha = numberField(l, "alpha", "lora");
    Napi::Value targets = l.Get("targets");
    if (!targets.IsArray()) throw Napi::TypeError::New(o.Env(), "lora.targets must be an array of matrix names");
    Napi::Array a = targets.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) c.lora.targets.push_back(a.Get(i).ToString().Utf8Value());
  }
  return c;
}

// The TokenSource named by options.source: a text's bytes, a mixture of token shards, or
// instruction examples (shards with learn masks).
std::shared_ptr<herd::TokenSource> read_token_source(const Napi::Object& o) {
  Napi::Object s = objectField(o, "source", "options");
  std::string kind = s.Get("kind").ToString();
  if (kind == "text-bytes") {
    Napi::Value text = s.Get("text");
    if (!text.IsTypedArray() || text.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(o.Env(), "source.text must be a Uint8Array");
    auto bytes = text.As<Napi::Uint8Array>();
    std::vector<uint8_t> copy(bytes.Data(), bytes.Data() + bytes.ElementLength());
    return std::make_unique<herd::ByteTextSource>(std::move(copy), seedField(s, "seed", "source"));
  }
  if (kind == "mixture") {
    herd::data::MixtureOptions options = herd::read_mixture_options(s, "source");
    try {
      return std::make_shared<herd::data::MixtureLoader>(std::move(options));
    } catch (const std::exception& e) {
      throw Napi::Error::New(o.Env(), e.what());  // a missing or damaged shard, named
    }
  }
  if (kind == "examples") {
    herd::data::ExampleOptions options = herd::read_example_options(s, "source");
    try {
      return std::make_shared<herd::data::ExampleLoader>(std::move(options));
    } catch (const std::exception& e) {
      throw Napi::Error::New(o.Env(), e.what());
    }
  }
  throw Napi::TypeError::New(o.Env(),
                             "source.kind '" + kind + "' is not known (text-bytes, mixture, examples)");
}

}  // namespace herd::binding
