// new Trainer(options): the CPU engine's training loop body as a JavaScript object.
// Heavy calls (step, forward, lossAndGrads, update) run on Node's worker pool and return
// Promises; one call at a time per trainer (a second one while busy throws). Tensors cross as
// copies, named as in the checkpoint (docs/formats.md, "Checkpoints").
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

#include "binding/data.h"
#include "binding/dist.h"
#include "binding/registry.h"
#include "engine/text_source.h"
#include "data/examples.h"
#include "engine/trainer.h"

namespace {

using herd::Trainer;

// ---- reading options -------------------------------------------------------------------------

Napi::Object objectField(const Napi::Object& o, const char* key, const std::string& where) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject())
    throw Napi::TypeError::New(o.Env(), where + "." + key + " must be an object");
  return v.As<Napi::Object>();
}

double numberField(const Napi::Object& o, const char* key, const std::string& where,
                   std::optional<double> fallback = std::nullopt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && fallback) return *fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), where + "." + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int intField(const Napi::Object& o, const char* key, const std::string& where,
             std::optional<int> fallback = std::nullopt) {
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

herd::TrainerConfig readConfig(const Napi::Object& o) {
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
  return c;
}

// The TokenSource named by options.source: a text's bytes, a mixture of token shards, or
// instruction examples (shards with learn masks).
std::shared_ptr<herd::TokenSource> readSource(const Napi::Object& o) {
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

// ---- the Trainer object ----------------------------------------------------------------------

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Trainer",
                       {InstanceMethod("step", &TrainerWrap::Step),
                        InstanceMethod("forward", &TrainerWrap::Forward),
                        InstanceMethod("lossAndGrads", &TrainerWrap::LossAndGrads),
                        InstanceMethod("update", &TrainerWrap::Update),
                        InstanceMethod("tensors", &TrainerWrap::Tensors),
                        InstanceMethod("syncHost", &TrainerWrap::SyncHost),
                        InstanceMethod("setTensors", &TrainerWrap::SetTensors),
                        InstanceMethod("layout", &TrainerWrap::Layout),
                        InstanceMethod("readSet", &TrainerWrap::ReadSet),
                        InstanceMethod("writeSet", &TrainerWrap::WriteSet),
                        InstanceMethod("state", &TrainerWrap::State),
                        InstanceMethod("setState", &TrainerWrap::SetState)});
  }

  TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "createTrainer(options: TrainerOptions)");
    Napi::Object o = info[0].As<Napi::Object>();
    herd::TrainerConfig config = readConfig(o);
    std::shared_ptr<herd::Collective> group;
    if (!o.Get("group").IsUndefined()) group = herd::collective_of(o.Get("group"), "options.group");
    try {
      trainer_ = std::make_unique<Trainer>(config, readSource(o), group);
    } catch (const std::bad_alloc&) {
      throw Napi::Error::New(env, "not enough memory for this model and batch (weights, gradients and "
                                  "AdamW's two moments are 16 bytes per parameter, plus activations)");
    } catch (const std::exception& e) {
      if (dynamic_cast<const Napi::Error*>(&e)) throw;
      throw Napi::Error::New(env, e.what());
    }
  }

  Trainer& trainer() { return *trainer_; }
  bool busy = false;

 private:
  void checkIdle(Napi::Env env) {
    if (busy) throw Napi::Error::New(env, "trainer is busy: await the previous call first");
  }
  // forward, lossAndGrads and update drive the host model directly: checks and tests of the
  // CPU engine. A CUDA trainer trains with step().
  void checkCpu(Napi::Env env, const char* what) {
    if (trainer_->on_device())
      throw Napi::Error::New(env, std::string(what) + " runs on the CPU backend only; a cuda trainer trains with step()");
  }
  // Device errors (a failed CUDA call) as JavaScript errors.
  template <class F>
  void onDevice(Napi::Env env, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value Forward(const Napi::CallbackInfo& info);
  Napi::Value LossAndGrads(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);

  // syncHost(): the host mirror brought up to date with the device (what tensors() does first).
  // With a sharded optimizer it is a collective, so every rank calls it at each checkpoint,
  // not only the one that writes.
  Napi::Value SyncHost(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    onDevice(env, [&] { trainer_->sync_host(); });
    return env.Undefined();
  }

  // tensors(which): [{ name, shape, data }] copies of "params", "grads", "m" or "v".
  Napi::Value Tensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    const std::vector<float>& buffer = bufferNamed(env, info[0], true);
    onDevice(env, [&] { trainer_->sync_host(); });
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& t : trainer_->model().tensors()) {
      Napi::Object o = describe(env, t);
      auto data = Napi::Float32Array::New(env, t.size);
      std::memcpy(data.Data(), buffer.data() + t.offset, t.size * sizeof(float));
      o.Set("data", data);
      out.Set(i++, o);
    }
    return out;
  }

  // setTensors(which, { name: Float32Array }): every tensor must be present with its size.
  Napi::Value SetTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    std::vector<float>& buffer = bufferNamed(env, info[0], false);
    if (info.Length() < 2 || !info[1].IsObject())
      throw Napi::TypeError::New(env, "setTensors(which, tensors: Record<string, Float32Array>)");
    Napi::Object map = info[1].As<Napi::Object>();
    const auto& tensors = trainer_->model().tensors();
    // validate everything before changing anything
    for (const auto& t : tensors) {
      Napi::Value v = map.Get(t.name);
      if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
        throw Napi::TypeError::New(env, "setTensors: tensor " + t.name + " is missing or not a Float32Array");
      if (v.As<Napi::Float32Array>().ElementLength() != t.size)
        throw Napi::RangeError::New(env, "setTensors: tensor " + t.name + " has " +
                                             std::to_string(v.As<Napi::Float32Array>().ElementLength()) +
                                             " elements, expected " + std::to_string(t.size));
    }
    onDevice(env, [&] { trainer_->sync_host(); });  // the other sets stay as they are
    for (const auto& t : tensors) {
      auto a = map.Get(t.name).As<Napi::Float32Array>();
      std::memcpy(buffer.data() + t.offset, a.Data(), t.size * sizeof(float));
    }
    trainer_->host_changed();
    return env.Undefined();
  }

  // layout(): [{ name, shape, offset, size }], where each tensor lies (in elements) in every
  // set's buffer. The tensors follow each other without gaps, in this order, so a set's
  // buffer is the data section of its safetensors file as it is.
  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& t : trainer_->model().tensors()) {
      Napi::Object o = describe(env, t);
      o.Set("offset", double(t.offset));
      o.Set("size", double(t.size));
      out.Set(i++, o);
    }
    return out;
  }

  // readSet(which, offset, into) and writeSet(which, offset, from): into.length (from.length)
  // elements of a set's buffer from element `offset` on, copied out of or into the engine. A
  // checkpoint streams its sets through one chunk-sized array this way: no file, and no whole
  // tensor, is ever held in JavaScript. writeSet's changes reach the device before its next
  // step (as setTensors's do).
  Napi::Value ReadSet(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    const std::vector<float>& buffer = bufferNamed(env, info[0], true);
    auto [offset, chunk] = rangeOf(info, buffer.size(), "readSet(which, offset, into: Float32Array)");
    onDevice(env, [&] { trainer_->sync_host(); });  // a copy only when a step ran since
    std::memcpy(chunk.Data(), buffer.data() + offset, chunk.ElementLength() * sizeof(float));
    return env.Undefined();
  }

  Napi::Value WriteSet(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    std::vector<float>& buffer = bufferNamed(env, info[0], false);
    auto [offset, chunk] = rangeOf(info, buffer.size(), "writeSet(which, offset, from: Float32Array)");
    onDevice(env, [&] { trainer_->sync_host(); });  // the rest of the mirror stays current
    std::memcpy(buffer.data() + offset, chunk.Data(), chunk.ElementLength() * sizeof(float));
    trainer_->host_changed();
    return env.Undefined();
  }

  // state(): where training stands, for the checkpoint's trainer state.
  Napi::Value State(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", double(trainer_->steps_done));
    o.Set("tokens", double(trainer_->tokens_seen));
    o.Set("adamStep", double(trainer_->optimizer().step_count));
    o.Set("sourceState", trainer_->source().save_state());
    o.Set("numParameters", double(trainer_->model().num_parameters()));
    o.Set("lr", herd::learning_rate(trainer_->config().optimizer, trainer_->steps_done));
    return o;
  }

  // setState({ step, tokens, adamStep, sourceState }): resume bookkeeping from a checkpoint.
  Napi::Value SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "setState({ step, tokens, adamStep, sourceState })");
    Napi::Object o = info[0].As<Napi::Object>();
    const int step = intField(o, "step", "state"), adam = intField(o, "adamStep", "state");
    const double tokens = numberField(o, "tokens", "state");
    if (!o.Get("sourceState").IsString())
      throw Napi::TypeError::New(env, "state.sourceState must be a string");
    try {
      trainer_->source().load_state(o.Get("sourceState").As<Napi::String>().Utf8Value());
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    onDevice(env, [&] { trainer_->sync_host(); });
    trainer_->steps_done = step;
    trainer_->tokens_seen = uint64_t(tokens);
    trainer_->optimizer().step_count = adam;
    trainer_->host_changed();
    return env.Undefined();
  }

  // { name, shape } of a tensor, for tensors() and layout().
  template <class T>
  static Napi::Object describe(Napi::Env env, const T& t) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    Napi::Array shape = Napi::Array::New(env);
    for (uint32_t k = 0; k < t.shape.size(); k++) shape.Set(k, double(t.shape[k]));
    o.Set("shape", shape);
    return o;
  }

  // The (offset, array) arguments of readSet and writeSet, checked against a buffer of `size`.
  static std::pair<size_t, Napi::Float32Array> rangeOf(const Napi::CallbackInfo& info, size_t size,
                                                       const char* usage) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[1].IsNumber() || !info[2].IsTypedArray() ||
        info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, usage);
    double at = info[1].As<Napi::Number>().DoubleValue();
    auto chunk = info[2].As<Napi::Float32Array>();
    if (!(at >= 0) || at != std::floor(at) || at + double(chunk.ElementLength()) > double(size))
      throw Napi::RangeError::New(env, std::string(usage) + ": elements " + std::to_string(at) + " + " +
                                           std::to_string(chunk.ElementLength()) + " lie outside the set's " +
                                           std::to_string(size));
    return {size_t(at), chunk};
  }

  std::vector<float>& bufferNamed(Napi::Env env, const Napi::Value& which, bool allow_grads) {
    std::string w = which.IsString() ? which.As<Napi::String>().Utf8Value() : "";
    if (w == "params") return trainer_->model().params;
    if (w == "m") return trainer_->optimizer().m;
    if (w == "v") return trainer_->optimizer().v;
    if (w == "grads" && allow_grads) return trainer_->model().grads;
    throw Napi::TypeError::New(env, std::string("tensor set must be one of params, m, v") +
                                        (allow_grads ? ", grads" : ""));
  }

  std::unique_ptr<Trainer> trainer_;
};

// ---- asynchronous calls -------------------------------------------------------------------------

// Runs `work` on the worker pool, then `done` on the JS thread to build the result.
class EngineWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  EngineWorker(Napi::Env env, TrainerWrap* wrap, Work work, Done done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), wrap_(wrap),
        work_(std::move(work)), done_(std::move(done)) {
    wrap_->Ref();
    wrap_->busy = true;
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    finish();
    deferred_.Resolve(done_(Env()));
  }
  void OnError(const Napi::Error& e) override {
    finish();
    deferred_.Reject(e.Value());
  }

 private:
  void finish() {
    wrap_->busy = false;
    wrap_->Unref();
  }
  Napi::Promise::Deferred deferred_;
  TrainerWrap* wrap_;
  Work work_;
  Done done_;
};

Napi::Object stepObject(Napi::Env env, const herd::StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("gradNorm", r.grad_norm);
  o.Set("lr", r.lr);
  o.Set("stop", r.stop);
  return o;
}

// step(stopRequested?) -> { loss, gradNorm, lr, stop }: with a group, `stop` is true when any
// rank asked to stop, so every rank ends after the same step.
Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  checkIdle(info.Env());
  const bool stop_requested = info.Length() > 0 && info[0].ToBoolean();
  auto result = std::make_shared<herd::StepResult>();
  auto* w = new EngineWorker(
      info.Env(), this,
      [this, result, stop_requested] { *result = trainer_->step(stop_requested); },
      [result](Napi::Env env) -> Napi::Value { return stepObject(env, *result); });
  w->Queue();
  return w->Promise();
}

// Checks tokens (and targets) are Int32Array of batch·seqLen entries; copies them.
struct Batch {
  std::vector<int32_t> tokens, targets, positions;  // targets −1: not learned
  int B = 0, T = 0;
  const int32_t* positions_or_null() const { return positions.empty() ? nullptr : positions.data(); }
};
Batch readBatch(const Napi::CallbackInfo& info, const char* usage, bool need_targets) {
  Napi::Env env = info.Env();
  auto isInt32 = [](const Napi::Value& v) {
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array;
  };
  if (info.Length() < 3 || !isInt32(info[0]) || !info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, usage);
  Batch b;
  b.B = info[1].As<Napi::Number>().Int32Value();
  b.T = info[2].As<Napi::Number>().Int32Value();
  if (b.B <= 0 || b.T <= 0) throw Napi::RangeError::New(env, "batch and seqLen must be positive");
  const size_t n = size_t(b.B) * b.T;
  auto tokens = info[0].As<Napi::Int32Array>();
  if (tokens.ElementLength() != n)
    throw Napi::RangeError::New(env, "tokens has " + std::to_string(tokens.ElementLength()) +
                                         " entries, expected batch*seqLen = " + std::to_string(n));
  b.tokens.assign(tokens.Data(), tokens.Data() + n);
  bool has_targets = info.Length() > 3 && !info[3].IsUndefined();
  if (need_targets && !has_targets) throw Napi::TypeError::New(env, usage);
  if (has_targets) {
    if (!isInt32(info[3])) throw Napi::TypeError::New(env, usage);
    auto targets = info[3].As<Napi::Int32Array>();
    if (targets.ElementLength() != n)
      throw Napi::RangeError::New(env, "targets has " + std::to_string(targets.ElementLength()) +
                                           " entries, expected batch*seqLen = " + std::to_string(n));
    b.targets.assign(targets.Data(), targets.Data() + n);
  }
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!isInt32(info[4])) throw Napi::TypeError::New(env, usage);
    auto positions = info[4].As<Napi::Int32Array>();
    if (positions.ElementLength() != n)
      throw Napi::RangeError::New(env, "positions has " + std::to_string(positions.ElementLength()) +
                                           " entries, expected batch*seqLen = " + std::to_string(n));
    b.positions.assign(positions.Data(), positions.Data() + n);
  }
  return b;
}

struct ForwardOut {
  double loss = 0;
  std::vector<float> logits, token_losses;
};

// { logits, loss, tokenLosses? } for JavaScript; tokenLosses only when the pass computed them.
Napi::Value forwardObject(Napi::Env env, const ForwardOut& out) {
  Napi::Object o = Napi::Object::New(env);
  auto logits = Napi::Float32Array::New(env, out.logits.size());
  std::copy(out.logits.begin(), out.logits.end(), logits.Data());
  o.Set("logits", logits);
  o.Set("loss", out.loss);
  if (!out.token_losses.empty()) {
    auto losses = Napi::Float32Array::New(env, out.token_losses.size());
    std::copy(out.token_losses.begin(), out.token_losses.end(), losses.Data());
    o.Set("tokenLosses", losses);
  }
  return o;
}

// forward(tokens, batch, seqLen, targets?) -> { logits, loss, tokenLosses? }: no gradients;
// with targets, tokenLosses[n] = −log p(target[n]) (what log-likelihood scoring needs).
Napi::Value TrainerWrap::Forward(const Napi::CallbackInfo& info) {
  checkIdle(info.Env());
  checkCpu(info.Env(), "forward()");
  auto b = std::make_shared<Batch>(readBatch(
      info, "forward(tokens: Int32Array, batch, seqLen, targets?: Int32Array, positions?: Int32Array)",
      false));
  auto out = std::make_shared<ForwardOut>();
  auto* w = new EngineWorker(
      info.Env(), this,
      [this, b, out] {
        herd::use_threads(trainer_->config().threads);
        auto& model = trainer_->model();
        out->loss = model.forward(b->tokens.data(), b->targets.empty() ? nullptr : b->targets.data(),
                                  b->B, b->T, b->positions_or_null());
        out->logits.assign(model.logits(),
                           model.logits() + size_t(b->B) * b->T * model.config().vocab_size);
        if (!b->targets.empty())
          out->token_losses.assign(model.losses(), model.losses() + size_t(b->B) * b->T);
      },
      [out](Napi::Env env) { return forwardObject(env, *out); });
  w->Queue();
  return w->Promise();
}

// lossAndGrads(tokens, batch, seqLen, targets) -> { logits, loss }: gradients of the mean loss
// replace the model's gradients (read them with tensors("grads")).
Napi::Value TrainerWrap::LossAndGrads(const Napi::CallbackInfo& info) {
  checkIdle(info.Env());
  checkCpu(info.Env(), "lossAndGrads()");
  auto b = std::make_shared<Batch>(readBatch(
      info,
      "lossAndGrads(tokens: Int32Array, batch, seqLen, targets: Int32Array, positions?: Int32Array)",
      true));
  auto out = std::make_shared<ForwardOut>();
  auto* w = new EngineWorker(
      info.Env(), this,
      [this, b, out] {
        herd::use_threads(trainer_->config().threads);
        auto& model = trainer_->model();
        const size_t n = size_t(b->B) * b->T;
        out->loss = model.forward(b->tokens.data(), b->targets.data(), b->B, b->T,
                                  b->positions_or_null());
        out->logits.assign(model.logits(), model.logits() + n * model.config().vocab_size);
        model.zero_grad();
        const size_t learned = model.learned_targets();
        model.backward(learned ? 1.0f / float(learned) : 0.0f);
      },
      [out](Napi::Env env) { return forwardObject(env, *out); });
  w->Queue();
  return w->Promise();
}

// update() -> { gradNorm, lr }: clip the current gradients and take one AdamW step.
Napi::Value TrainerWrap::Update(const Napi::CallbackInfo& info) {
  checkIdle(info.Env());
  checkCpu(info.Env(), "update()");
  auto result = std::make_shared<herd::StepResult>();
  auto* w = new EngineWorker(
      info.Env(), this, [this, result] { *result = trainer_->update(0.0); },
      [result](Napi::Env env) -> Napi::Value { return stepObject(env, *result); });
  w->Queue();
  return w->Promise();
}

}  // namespace

// The class only; native/engine.ts wraps `new Trainer(options)` as createTrainer().
HERD_BINDING(InitEngine) { exports.Set("Trainer", TrainerWrap::Define(env)); }
