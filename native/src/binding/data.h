// The data binding's pieces that the engine binding shares: a mixture's options as
// JavaScript gives them (MixtureLoader in binding/data.cc, and a trainer's
// `source: { kind: "mixture", ... }` in binding/engine.cc).
#pragma once
#include <napi.h>

#include <string>

#include "data/mixture.h"

namespace herd {

// { sources: [{ name, weight?, folder? | shards? }], seed?, blockRows? }; throws a TypeError
// naming `where` for anything else.
data::MixtureOptions read_mixture_options(const Napi::Object& o, const std::string& where);

}  // namespace herd
