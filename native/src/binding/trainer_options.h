// Reading a trainer's options (native/engine.ts's TrainerOptions) from JavaScript: the field
// readers the engine binding shares, the TrainerConfig and the token source.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/token_source.h"
#include "engine/trainer.h"

namespace herd::binding {

// o[key] as an object, a number, a non-negative int, or a seed (an integer in [0, 2^53)); a
// TypeError or RangeError naming `where.key` otherwise. A fallback makes the field optional.
Napi::Object objectField(const Napi::Object& o, const char* key, const std::string& where);
double numberField(const Napi::Object& o, const char* key, const std::string& where,
                   std::optional<double> fallback = std::nullopt);
int intField(const Napi::Object& o, const char* key, const std::string& where,
             std::optional<int> fallback = std::nullopt);
uint64_t seedField(const Napi::Object& o, const char* key, const std::string& where);

// options.model, .optimizer, .seqLen, …, .lora as the engine's TrainerConfig.
herd::TrainerConfig read_trainer_config(const Napi::Object& o);

// The TokenSource options.source names: a text's bytes, a mixture of token shards, or
// instruction examples (shards with learn masks).
std::shared_ptr<herd::TokenSource> read_token_source(const Napi::Object& o);

}  // namespace herd::binding
