// new Trainer(options): the CPU engine's training loop body as a JavaScript object.
// Heavy calls (step, forward, lossAndGrads, update) run on Node's worker pool and return
// Promises; one call at a time per trainer (a second one while busy throws). Tensors cross as
// copies, named as in the checkpoint (docs/formats.md, "Checkpoints").
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>

#include "binding/dist.h"
#include "binding/registry.h"
#include "binding/trainer_options.h"
#include "engine/trainer.h"

namespace {

using herd::Trainer;
using namespace herd::binding;

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
                        InstanceMethod("lora", &TrainerWrap::LoraOptions),
                        InstanceMethod("snapshot", &TrainerWrap::Snapshot),
                        InstanceMethod("readSnapshot", &TrainerWrap::ReadSnapshot),
                        InstanceMethod("releaseSnapshot", &TrainerWrap::ReleaseSnapshot),
                        InstanceMethod("setState", &TrainerWrap::SetState)});
  }

  TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "createTrainer(options: TrainerOptions)");
    Napi::Object o = info[0].As<Napi::Object>();
    herd::TrainerConfig config = read_trainer_config(o);
    std::shared_ptr<herd::Collective> group;
    if (!o.Get("group").IsUndefined()) group = herd::collective_of(o.Get("group"), "options.group");
    try {
      trainer_ = std::make_unique<Trainer>(config, read_token_source(o), group);
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
    for (const auto& t : layoutOf(info[0])) {
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
    const auto& tensors = layoutOf(info[0]);
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
    wrote(info[0]);
    return env.Undefined();
  }

  // layout(which = "params"): [{ name, shape, offset, size }], where each tensor lies (in
  // elements) in that set's buffer. The tensors follow each other without gaps, in this order,
  // so a set's buffer is the data section of its safetensors file as it is. params and grads
  // are the model's; with LoRA, m and v are the adapters' (as lora), and base the targets'.
  Napi::Value Layout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    const Napi::Value which = info.Length() > 0 ? info[0] : Napi::String::New(env, "params");
    for (const auto& t : layoutOf(which)) {
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
    wrote(info[0]);
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
    o.Set("trainableParameters", double(trainer_->optimizer().m.size()));
    o.Set("lr", herd::learning_rate(trainer_->config().optimizer, trainer_->steps_done));
    return o;
  }

  // snapshot(): copies of the state sets (params, m, v; lora and base with LoRA), so that a
  // checkpoint is written from them while training goes on; returns the bytes copied.
  // readSnapshot(set, offset, into) reads them, also while a step runs (nothing else touches
  // them); releaseSnapshot() ends the snapshot. One at a time. The copies' memory is kept for
  // the next snapshot: allocating (and first touching) gigabytes anew each time would cost
  // several times the copy itself.
  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    checkIdle(env);
    if (snapshot_held_)
      throw Napi::Error::New(env, "a snapshot is still held: releaseSnapshot() first");
    onDevice(env, [&] { trainer_->sync_host(); });
    size_t bytes = 0;
    try {
      for (const char* set : {"params", "m", "v", "lora", "base"}) {
        if (!trainer_->lora() && (set == std::string("lora") || set == std::string("base"))) continue;
        const auto& from = bufferNamed(env, Napi::String::New(env, set), false);
        snapshot_[set].assign(from.begin(), from.end());
        bytes += from.size() * sizeof(float);
      }
    } catch (const std::bad_alloc&) {
      snapshot_.clear();
      throw Napi::Error::New(env, "not enough memory for a snapshot of the training state (" +
                                      std::to_string(bytes >> 20) + " MiB copied when it ran out)");
    }
    snapshot_held_ = true;
    return Napi::Number::New(env, double(bytes));
  }

  Napi::Value ReadSnapshot(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto it = snapshot_.find(setName(info[0]));
    if (!snapshot_held_ || it == snapshot_.end())
      throw Napi::TypeError::New(env, "readSnapshot: no snapshot of set '" + setName(info[0]) +
                                          "' (take one with snapshot())");
    auto [offset, chunk] = rangeOf(info, it->second.size(), "readSnapshot(which, offset, into: Float32Array)");
    std::memcpy(chunk.Data(), it->second.data() + offset, chunk.ElementLength() * sizeof(float));
    return env.Undefined();
  }

  Napi::Value ReleaseSnapshot(const Napi::CallbackInfo& info) {
    snapshot_held_ = false;
    return info.Env().Undefined();
  }

  // lora(): { rank, alpha, targets } as given, or undefined without LoRA.
  Napi::Value LoraOptions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!trainer_->lora()) return env.Undefined();
    const herd::LoraConfig& c = trainer_->config().lora;
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", c.rank);
    o.Set("alpha", c.alpha);
    Napi::Array targets = Napi::Array::New(env);
    for (uint32_t i = 0; i < c.targets.size(); i++) targets.Set(i, c.targets[i]);
    o.Set("targets", targets);
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

  // The sets: params, grads (the model's), m, v (AdamW's), and with LoRA lora, lora_grads (the
  // adapters) and base (the targets' frozen weights).
  std::vector<float>& bufferNamed(Napi::Env env, const Napi::Value& which, bool allow_grads) {
    const std::string w = setName(which);
    herd::Lora* lora = trainer_->lora();
    if (w == "params") return trainer_->model().params;
    if (w == "m") return trainer_->optimizer().m;
    if (w == "v") return trainer_->optimizer().v;
    if (w == "grads" && allow_grads) return trainer_->model().grads;
    if (lora && w == "lora") return lora->params;
    if (lora && w == "base") return lora->base;
    if (lora && w == "lora_grads" && allow_grads) return lora->grads;
    throw Napi::TypeError::New(env, std::string("tensor set must be one of params, m, v") +
                                        (allow_grads ? ", grads" : "") +
                                        (lora ? (allow_grads ? ", lora, lora_grads, base" : ", lora, base") : ""));
  }

  const std::vector<herd::TensorInfo>& layoutOf(const Napi::Value& which) {
    bufferNamed(which.Env(), which, true);  // a known set
    const std::string w = setName(which);
    herd::Lora* lora = trainer_->lora();
    if (w == "base") return lora->base_tensors();
    if (lora && (w == "lora" || w == "lora_grads" || w == "m" || w == "v")) return lora->tensors();
    return trainer_->model().tensors();
  }

  static std::string setName(const Napi::Value& which) {
    return which.IsString() ? which.As<Napi::String>().Utf8Value() : "";
  }

  // After a set was written: the device takes the host's state before its next step, and LoRA
  // has its frozen weights once they came from a checkpoint.
  void wrote(const Napi::Value& which) {
    if (setName(which) == "base") trainer_->lora()->has_base = true;
    trainer_->host_changed();
  }

  std::unique_ptr<Trainer> trainer_;
  std::map<std::string, std::vector<float>> snapshot_;
  bool snapshot_held_ = false;
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
