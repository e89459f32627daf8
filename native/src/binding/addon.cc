// The addon's entry point: runs every registered binding's init.
#include "binding/registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto init : herd::bindings()) init(env, exports);
  return exports;
}

NODE_API_MODULE(herd_native, Init)
