// The data pipeline for JavaScript: Preparer (text → shards), shard read/verify/write, and
// MixtureLoader (the engine's TokenSource). Everything that touches many bytes runs off the
// JavaScript thread.
#include <atomic>
#include <memory>

#include "binding/async.h"
#include "binding/data.h"
#include "binding/registry.h"
#include "data/mixture.h"
#include "data/prepare.h"
#include "data/shard.h"

namespace {

using namespace herd::data;

double number_or(const Napi::Object& o, const char* key, double fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool bool_or(const Napi::Object& o, const char* key, bool fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string string_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a string");
  return v.As<Napi::String>();
}

Napi::Object stats_to_js(Napi::Env env, const PrepareStats& st) {
  auto o = Napi::Object::New(env);
  auto stages = Napi::Array::New(env, st.stages.size());
  for (size_t i = 0; i < st.stages.size(); i++) {
    auto s = Napi::Object::New(env);
    s.Set("name", st.stages[i].name);
    s.Set("docs", double(st.stages[i].docs));
    s.Set("lines", double(st.stages[i].lines));
    s.Set("bytes", double(st.stages[i].bytes));
    stages.Set(uint32_t(i), s);
  }
  auto shards = Napi::Array::New(env, st.shards.size());
  for (size_t i = 0; i < st.shards.size(); i++) {
    auto s = Napi::Object::New(env);
    s.Set("file", st.shards[i].file);
    s.Set("tokens", double(st.shards[i].tokens));
    s.Set("docs", double(st.shards[i].docs));
    shards.Set(uint32_t(i), s);
  }
  o.Set("stages", stages);
  o.Set("shards", shards);
  o.Set("tokens", double(st.tokens));
  o.Set("vocabSize", st.vocab_size);
  return o;
}

class PreparerWrap : public Napi::ObjectWrap<PreparerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Preparer",
                       {InstanceMethod<&PreparerWrap::Add>("add"),
                        InstanceMethod<&PreparerWrap::Finish>("finish")});
  }

  explicit PreparerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PreparerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "new Preparer(options)");
    auto o = info[0].As<Napi::Object>();
    PrepareOptions p;
    p.tokenizer_path = string_of(o, "tokenizer");
    p.out_dir = string_of(o, "outDir");
    p.shard_tokens = uint64_t(number_or(o, "shardTokens", double(p.shard_tokens)));
    p.bos = bool_or(o, "bos", p.bos);
    p.eos = bool_or(o, "eos", p.eos);
    p.threads = int(number_or(o, "threads", p.threads));
    p.dedup_docs = bool_or(o, "dedupDocs", p.dedup_docs);
    p.dedup_lines = bool_or(o, "dedupLines", p.dedup_lines);
    p.max_line_chars = uint64_t(number_or(o, "maxLineChars", double(p.max_line_chars)));
    p.max_bad_chars = number_or(o, "maxBadChars", p.max_bad_chars);
    p.line_min_words = uint64_t(number_or(o, "lineMinWords", double(p.line_min_words)));
    p.terminal_punct = bool_or(o, "terminalPunct", p.terminal_punct);
    p.min_words = uint64_t(number_or(o, "minWords", double(p.min_words)));
    prep_ = herd::js_call(env, [&] { return std::make_shared<Preparer>(p); });
  }

 private:
  // Marks the preparer busy for one call; a second call before the first settles is a bug.
  std::shared_ptr<std::atomic<bool>> claim(Napi::Env env) {
    if (busy_->exchange(true)) throw Napi::Error::New(env, "Preparer: the previous call has not finished");
    return busy_;
  }

  // add(docs: string[]) -> Promise<void>
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "add(docs: string[])");
    auto arr = info[0].As<Napi::Array>();
    auto docs = std::make_shared<std::vector<std::string>>();
    docs->reserve(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) throw Napi::TypeError::New(env, "add: documents must be strings");
      docs->push_back(v.As<Napi::String>());
    }
    auto busy = claim(env);
    auto prep = prep_;
    return herd::run_async<bool>(
        env,
        [prep, docs, busy] {
          struct Release { std::atomic<bool>& b; ~Release() { b = false; } } release{*busy};
          prep->add(std::move(*docs));
          return true;
        },
        [](Napi::Env e, bool&) { return e.Undefined(); });
  }

  // finish() -> Promise<Stats>
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    auto busy = claim(info.Env());
    auto prep = prep_;
    return herd::run_async<PrepareStats>(
        info.Env(),
        [prep, busy] {
          struct Release { std::atomic<bool>& b; ~Release() { b = false; } } release{*busy};
          return prep->finish();
        },
        [](Napi::Env e, PrepareStats& st) -> Napi::Value { return stats_to_js(e, st); });
  }

  std::shared_ptr<Preparer> prep_;
  std::shared_ptr<std::atomic<bool>> busy_ = std::make_shared<std::atomic<bool>>(false);
};

Napi::Object header_to_js(Napi::Env env, const Shard& s) {
  auto o = Napi::Object::New(env);
  o.Set("path", s.path());
  o.Set("version", s.header().version);
  o.Set("tokenBytes", s.header().token_bytes);
  o.Set("tokens", double(s.token_count()));
  o.Set("docs", double(s.doc_count()));
  o.Set("vocabSize", s.vocab_size());
  return o;
}

struct ShardContents {
  std::shared_ptr<Shard> shard;
  std::vector<int32_t> tokens;
  std::vector<uint64_t> docs;
  std::vector<uint8_t> learn;  // version 2 only
};

// readShard(path) -> Promise<{...header, ids: Int32Array, docStarts: number[]}>
Napi::Value ReadShard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "readShard(path: string)");
  std::string path = info[0].As<Napi::String>();
  return herd::run_async<ShardContents>(
      env,
      [path] {
        ShardContents c{std::make_shared<Shard>(path), {}, {}, {}};
        c.tokens.resize(c.shard->token_count());
        c.shard->read(0, c.shard->token_count(), c.tokens.data());
        if (c.shard->has_learn_mask()) {
          c.learn.resize(c.shard->token_count());
          c.shard->read_learn(0, c.shard->token_count(), c.learn.data());
        }
        for (uint64_t d = 0; d <= c.shard->doc_count(); d++) c.docs.push_back(c.shard->doc_start(d));
        return c;
      },
      [](Napi::Env e, ShardContents& c) -> Napi::Value {
        auto o = header_to_js(e, *c.shard);
        o.Set("ids", herd::to_int32_array(e, c.tokens));
        if (c.shard->has_learn_mask()) {
          auto learn = Napi::Uint8Array::New(e, c.learn.size());
          std::copy(c.learn.begin(), c.learn.end(), learn.Data());
          o.Set("learn", learn);
        }
        auto docs = Napi::Array::New(e, c.docs.size());
        for (size_t i = 0; i < c.docs.size(); i++) docs.Set(uint32_t(i), double(c.docs[i]));
        o.Set("docStarts", docs);
        return o;
      });
}

// verifyShard(path) -> Promise<header>: structure, every id, and the payload hash.
Napi::Value VerifyShard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "verifyShard(path: string)");
  std::string path = info[0].As<Napi::String>();
  return herd::run_async<std::shared_ptr<Shard>>(
      env,
      [path] {
        auto s = std::make_shared<Shard>(path);
        s->verify();
        return s;
      },
      [](Napi::Env e, std::shared_ptr<Shard>& s) -> Napi::Value { return header_to_js(e, *s); });
}

// writeShard(path, ids: Int32Array, docStarts: number[], vocabSize, learn?: Uint8Array)
//   -> Promise<void>; with learn (0/1 per id) a version-2 shard of instruction examples.
Napi::Value WriteShard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "writeShard(path, ids: Int32Array, docStarts: number[], vocabSize, learn?: Uint8Array)";
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsTypedArray() || !info[2].IsArray() ||
      !info[3].IsNumber())
    throw Napi::TypeError::New(env, usage);
  std::string path = info[0].As<Napi::String>();
  auto ids = info[1].As<Napi::Int32Array>();
  auto tokens = std::make_shared<std::vector<int32_t>>(ids.Data(), ids.Data() + ids.ElementLength());
  auto starts = std::make_shared<std::vector<uint64_t>>();
  auto arr = info[2].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) starts->push_back(uint64_t(arr.Get(i).As<Napi::Number>().Int64Value()));
  uint32_t vocab = info[3].As<Napi::Number>().Uint32Value();
  for (int32_t id : *tokens)
    if (id < 0 || uint32_t(id) >= vocab) throw Napi::RangeError::New(env, "writeShard: id " + std::to_string(id) + " outside the vocabulary");
  if (starts->empty() || starts->front() != 0 || starts->back() != tokens->size())
    throw Napi::RangeError::New(env, "writeShard: docStarts must run from 0 to ids.length");
  std::shared_ptr<std::vector<uint8_t>> learn;
  if (info.Length() > 4 && !info[4].IsUndefined()) {
    if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, usage);
    auto l = info[4].As<Napi::Uint8Array>();
    if (l.ElementLength() != tokens->size())
      throw Napi::RangeError::New(env, "writeShard: learn needs one entry per id");
    learn = std::make_shared<std::vector<uint8_t>>(l.Data(), l.Data() + l.ElementLength());
  }
  return herd::run_async<bool>(
      env,
      [path, tokens, starts, vocab, learn] {
        write_shard(path, *tokens, *starts, vocab, learn.get());
        return true;
      },
      [](Napi::Env e, bool&) { return e.Undefined(); });
}

class MixtureWrap : public Napi::ObjectWrap<MixtureWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MixtureLoader",
                       {InstanceMethod<&MixtureWrap::Batch>("batch"),
                        InstanceMethod<&MixtureWrap::SaveState>("saveState"),
                        InstanceMethod<&MixtureWrap::LoadState>("loadState"),
                        InstanceMethod<&MixtureWrap::Positions>("positions"),
                        InstanceMethod<&MixtureWrap::Sample>("sample"),
                        InstanceAccessor<&MixtureWrap::VocabSize>("vocabSize")});
  }

  explicit MixtureWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MixtureWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "new MixtureLoader(options)");
    auto o = info[0].As<Napi::Object>();
    MixtureOptions opt = herd::read_mixture_options(o, "MixtureLoader");
    loader_ = herd::js_call(env, [&] { return std::make_shared<MixtureLoader>(opt); });
  }

 private:
  // batch(step, rank, world, batch, seqLen) -> Promise<Int32Array of batch·(seqLen+1)>
  Napi::Value Batch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5) throw Napi::TypeError::New(env, "batch(step, rank, world, batch, seqLen)");
    for (size_t i = 0; i < 5; i++)
      if (!info[i].IsNumber()) throw Napi::TypeError::New(env, "batch(step, rank, world, batch, seqLen): numbers");
    int64_t step = info[0].As<Napi::Number>().Int64Value();
    int rank = info[1].As<Napi::Number>().Int32Value(), world = info[2].As<Napi::Number>().Int32Value();
    int batch = info[3].As<Napi::Number>().Int32Value(), seq = info[4].As<Napi::Number>().Int32Value();
    if (step < 0 || batch <= 0 || seq <= 0 || world <= 0 || rank < 0 || rank >= world)
      throw Napi::RangeError::New(env, "batch: need step >= 0, 0 <= rank < world, batch > 0, seqLen > 0");
    auto loader = loader_;
    return herd::run_async<std::vector<int32_t>>(
        env,
        [loader, step, rank, world, batch, seq] {
          std::vector<int32_t> out(size_t(batch) * size_t(seq + 1));
          loader->batch(uint64_t(step), rank, world, batch, seq, out.data());
          return out;
        },
        [](Napi::Env e, std::vector<int32_t>& v) { return herd::to_int32_array(e, v); });
  }

  Napi::Value SaveState(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), loader_->save_state()); }

  Napi::Value LoadState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "loadState(state: string)");
    std::string s = info[0].As<Napi::String>();
    herd::js_call(env, [&] { loader_->load_state(s); });
    return env.Undefined();
  }

  Napi::Value Positions(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto pos = loader_->positions();
    auto a = Napi::Array::New(env, pos.size());
    for (size_t i = 0; i < pos.size(); i++) {
      auto o = Napi::Object::New(env);
      o.Set("name", pos[i].name);
      o.Set("tokens", double(pos[i].tokens));
      o.Set("windows", double(pos[i].windows));
      o.Set("samples", double(pos[i].samples));
      o.Set("epoch", double(pos[i].epoch));
      a.Set(uint32_t(i), o);
    }
    return a;
  }

  // sample(globalRow, seqLen) -> {source, k, epoch, window}
  Napi::Value Sample(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
      throw Napi::TypeError::New(env, "sample(globalRow, seqLen)");
    uint64_t g = uint64_t(info[0].As<Napi::Number>().Int64Value());
    int seq = info[1].As<Napi::Number>().Int32Value();
    if (seq <= 0) throw Napi::RangeError::New(env, "sample: seqLen must be positive");
    auto s = herd::js_call(env, [&] { return loader_->sample(g, seq); });
    auto o = Napi::Object::New(env);
    o.Set("source", s.source);
    o.Set("k", double(s.k));
    o.Set("epoch", double(s.epoch));
    o.Set("window", double(s.window));
    return o;
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), loader_->vocab_size()); }

  std::shared_ptr<MixtureLoader> loader_;
};

}  // namespace

namespace herd {

data::MixtureOptions read_mixture_options(const Napi::Object& o, const std::string& where) {
  Napi::Env env = o.Env();
  MixtureOptions opt;
  opt.seed = uint64_t(number_or(o, "seed", 0));
  opt.block_rows = uint32_t(number_or(o, "blockRows", opt.block_rows));
  Napi::Value sources = o.Get("sources");
  if (!sources.IsArray()) throw Napi::TypeError::New(env, where + ": sources must be an array");
  for (uint32_t i = 0; i < sources.As<Napi::Array>().Length(); i++) {
    Napi::Value v = sources.As<Napi::Array>().Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, where + ": each source is an object");
    auto so = v.As<Napi::Object>();
    MixtureSourceSpec spec;
    spec.name = string_of(so, "name");
    spec.weight = number_or(so, "weight", 1);
    if (so.Get("folder").IsString()) spec.folder = string_of(so, "folder");
    if (so.Get("shards").IsArray()) {
      auto a = so.Get("shards").As<Napi::Array>();
      for (uint32_t j = 0; j < a.Length(); j++) spec.shards.push_back(a.Get(j).ToString());
    }
    if (spec.folder.empty() && spec.shards.empty())
      throw Napi::TypeError::New(env, where + ": source " + spec.name + " needs a folder or shards");
    opt.sources.push_back(spec);
  }
  return opt;
}

}  // namespace herd

HERD_BINDING(InitData) {
  exports.Set("Preparer", PreparerWrap::Define(env));
  exports.Set("MixtureLoader", MixtureWrap::Define(env));
  exports.Set("readShard", Napi::Function::New(env, ReadShard));
  exports.Set("verifyShard", Napi::Function::New(env, VerifyShard));
  exports.Set("writeShard", Napi::Function::New(env, WriteShard));
}
