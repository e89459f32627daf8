// The data binding's pieces that the engine binding shares: a mixture's and instruction
// examples' options as JavaScript gives them (MixtureLoader in binding/data.cc, ExampleLoader
// in binding/examples.cc, and a trainer's `source: { kind: "mixture" | "examples", ... }` in
// binding/engine.cc).
#pragma once
#include <napi.h>

#include <string>

#include "data/examples.h"
#include "data/mixture.h"

namespace herd {

// { sources: [{ name, weight?, folder? | shards? }], seed?, blockRows? }; throws a TypeError
// naming `where` for anything else.
data::MixtureOptions read_mixture_options(const Napi::Object& o, const std::string& where);

// { folder } or { shards: string[] }, and seed?; throws a TypeError naming `where` otherwise.
data::ExampleOptions read_example_options(const Napi::Object& o, const std::string& where);

}  // namespace herd
