// Tokenizer(path): a SentencePiece model for JavaScript. encode/decode of whole texts run off
// the JavaScript thread; piece lookups are synchronous (a table read).
#include <memory>

#include "binding/async.h"
#include "binding/registry.h"
#include "data/parallel.h"
#include "data/tokenizer.h"

namespace {

using herd::data::Tokenizer;

std::vector<int32_t> ids_from(Napi::Env env, const Napi::Value& v, const char* what) {
  std::vector<int32_t> ids;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    auto a = v.As<Napi::Int32Array>();
    ids.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (v.IsArray()) {
    auto a = v.As<Napi::Array>();
    ids.reserve(a.Length());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value x = a.Get(i);
      if (!x.IsNumber()) throw Napi::TypeError::New(env, std::string(what) + ": ids must be numbers");
      ids.push_back(x.As<Napi::Number>().Int32Value());
    }
  } else {
    throw Napi::TypeError::New(env, std::string(what) + ": ids must be an Int32Array or number[]");
  }
  return ids;
}

class TokenizerWrap : public Napi::ObjectWrap<TokenizerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tokenizer",
                       {InstanceMethod<&TokenizerWrap::Encode>("encode"),
                        InstanceMethod<&TokenizerWrap::EncodeBatch>("encodeBatch"),
                        InstanceMethod<&TokenizerWrap::Decode>("decode"),
                        InstanceMethod<&TokenizerWrap::Piece>("piece"),
                        InstanceMethod<&TokenizerWrap::PieceId>("pieceId"),
                        InstanceMethod<&TokenizerWrap::IsByte>("isByte"),
                        InstanceAccessor<&TokenizerWrap::VocabSize>("vocabSize"),
                        InstanceAccessor<&TokenizerWrap::BosId>("bosId"),
                        InstanceAccessor<&TokenizerWrap::EosId>("eosId"),
                        InstanceAccessor<&TokenizerWrap::UnkId>("unkId")});
  }

  explicit TokenizerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TokenizerWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "new Tokenizer(path: string)");
    std::string path = info[0].As<Napi::String>();
    tok_ = herd::js_call(env, [&] { return std::make_shared<Tokenizer>(path); });
  }

 private:
  // encode(text, bos, eos) -> Promise<Int32Array>
  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "encode(text: string, bos?: boolean, eos?: boolean)");
    auto text = std::make_shared<std::string>(info[0].As<Napi::String>().Utf8Value());
    bool bos = info.Length() > 1 && info[1].ToBoolean();
    bool eos = info.Length() > 2 && info[2].ToBoolean();
    auto tok = tok_;
    return herd::run_async<std::vector<int32_t>>(
        env, [tok, text, bos, eos] { return tok->encode(*text, bos, eos); },
        [](Napi::Env e, std::vector<int32_t>& ids) { return herd::to_int32_array(e, ids); });
  }

  // encodeBatch(texts, bos, eos) -> Promise<Int32Array[]>, encoded in parallel.
  Napi::Value EncodeBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray())
      throw Napi::TypeError::New(env, "encodeBatch(texts: string[], bos?: boolean, eos?: boolean)");
    auto arr = info[0].As<Napi::Array>();
    auto texts = std::make_shared<std::vector<std::string>>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsString()) throw Napi::TypeError::New(env, "encodeBatch: texts must be strings");
      texts->push_back(v.As<Napi::String>());
    }
    bool bos = info.Length() > 1 && info[1].ToBoolean();
    bool eos = info.Length() > 2 && info[2].ToBoolean();
    auto tok = tok_;
    using Out = std::vector<std::vector<int32_t>>;
    return herd::run_async<Out>(
        env,
        [tok, texts, bos, eos] {
          Out out(texts->size());
          const int64_t n = int64_t(texts->size());
          herd::data::parallel_for(n, 0, 16, [&](int64_t i) { out[i] = tok->encode((*texts)[i], bos, eos); });
          return out;
        },
        [](Napi::Env e, Out& out) -> Napi::Value {
          auto a = Napi::Array::New(e, out.size());
          for (size_t i = 0; i < out.size(); i++) a.Set(uint32_t(i), herd::to_int32_array(e, out[i]));
          return a;
        });
  }

  // decode(ids) -> Promise<string>
  Napi::Value Decode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1) throw Napi::TypeError::New(env, "decode(ids: Int32Array | number[])");
    auto ids = std::make_shared<std::vector<int32_t>>(ids_from(env, info[0], "decode"));
    auto tok = tok_;
    return herd::run_async<std::string>(
        env, [tok, ids] { return tok->decode(*ids); },
        [](Napi::Env e, std::string& s) { return Napi::String::New(e, s); });
  }

  Napi::Value Piece(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "piece(id: number)");
    int32_t id = info[0].As<Napi::Number>().Int32Value();
    return Napi::String::New(env, herd::js_call(env, [&] { return tok_->piece(id); }));
  }

  Napi::Value PieceId(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString())
      throw Napi::TypeError::New(env, "pieceId(piece: string)");
    return Napi::Number::New(env, tok_->piece_id(info[0].As<Napi::String>()));
  }

  Napi::Value IsByte(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "isByte(id: number)");
    return Napi::Boolean::New(env, tok_->is_byte(info[0].As<Napi::Number>().Int32Value()));
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tok_->vocab_size()); }
  Napi::Value BosId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tok_->bos_id()); }
  Napi::Value EosId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tok_->eos_id()); }
  Napi::Value UnkId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), tok_->unk_id()); }

  std::shared_ptr<Tokenizer> tok_;
};

// trainTokenizer({inputs, modelPath, vocabSize, characterCoverage, inputSentenceSize,
//                 maxSentenceLength, threads, seed}) -> Promise<void>
Napi::Value TrainTokenizer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "trainTokenizer(options: object)");
  auto o = info[0].As<Napi::Object>();
  herd::data::TrainOptions opt;
  Napi::Value inputs = o.Get("inputs");
  if (!inputs.IsArray()) throw Napi::TypeError::New(env, "trainTokenizer: inputs must be string[]");
  for (uint32_t i = 0; i < inputs.As<Napi::Array>().Length(); i++)
    opt.inputs.push_back(inputs.As<Napi::Array>().Get(i).ToString());
  if (!o.Get("modelPath").IsString())
    throw Napi::TypeError::New(env, "trainTokenizer: modelPath must be a string");
  opt.model_path = o.Get("modelPath").ToString();
  auto num = [&](const char* key, auto& field) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("trainTokenizer: ") + key + " must be a number");
    field = static_cast<std::remove_reference_t<decltype(field)>>(v.As<Napi::Number>().DoubleValue());
  };
  num("vocabSize", opt.vocab_size);
  num("characterCoverage", opt.character_coverage);
  num("inputSentenceSize", opt.input_sentence_size);
  num("maxSentenceLength", opt.max_sentence_length);
  num("threads", opt.num_threads);
  num("seed", opt.seed);
  opt.verbose = o.Get("verbose").ToBoolean();
  return herd::run_async<bool>(
      env, [opt] { herd::data::train_tokenizer(opt); return true; },
      [](Napi::Env e, bool&) { return e.Undefined(); });
}

}  // namespace

HERD_BINDING(InitTokenizer) {
  exports.Set("Tokenizer", TokenizerWrap::Define(env));
  exports.Set("trainTokenizer", Napi::Function::New(env, TrainTokenizer));
}
