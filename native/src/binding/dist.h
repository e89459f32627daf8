// The data-parallel group as the engine binding sees it: `options.group` of createTrainer is
// the object joinGroup() resolved to (binding/dist.cc).
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "dist/collective.h"

namespace herd {

// The Collective behind a group object; throws a TypeError naming `where` for anything else,
// and an Error when the group was closed.
std::shared_ptr<Collective> collective_of(const Napi::Value& value, const std::string& where);

}  // namespace herd
