// Each binding file registers its exports at static-initialisation time, so adding an area
// of the engine to the addon means adding one file under src/binding/ and nothing else.
#pragma once
#include <napi.h>
#include <vector>

namespace herd {

using BindingInit = void (*)(Napi::Env env, Napi::Object exports);

inline std::vector<BindingInit>& bindings() {
  static std::vector<BindingInit> all;
  return all;
}

struct RegisterBinding {
  explicit RegisterBinding(BindingInit init) { bindings().push_back(init); }
};

}  // namespace herd

#define HERD_BINDING(name) \
  static void name(Napi::Env env, Napi::Object exports); \
  static herd::RegisterBinding name##_registered(name); \
  static void name(Napi::Env env, Napi::Object exports)
