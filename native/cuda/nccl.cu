#include <dlfcn.h>

#include "common.cuh"
#include "nccl.cuh"

namespace herd::cuda {

namespace {

template <class Fn>
bool bind(void* lib, const char* name, Fn& fn, std::string& why) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) why = std::string("libnccl.so.2 has no ") + name;
  return fn != nullptr;
}

}  // namespace

const Nccl* nccl(std::string* why_out) {
  static std::string why;
  static const Nccl* loaded = []() -> const Nccl* {
    void* lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      why = std::string("cannot load libnccl.so.2: ") + dlerror();
      return nullptr;
    }
    static Nccl n;
    const bool ok = bind(lib, "ncclGetUniqueId", n.GetUniqueId, why) &&
                    bind(lib, "ncclCommInitRank", n.CommInitRank, why) &&
                    bind(lib, "ncclCommDestroy", n.CommDestroy, why) &&
                    bind(lib, "ncclAllReduce", n.AllReduce, why) &&
                    bind(lib, "ncclReduceScatter", n.ReduceScatter, why) &&
                    bind(lib, "ncclAllGather", n.AllGather, why) &&
                    bind(lib, "ncclGetErrorString", n.GetErrorString, why);
    return ok ? &n : nullptr;
  }();
  if (why_out) *why_out = why;
  return loaded;
}

void nccl_check(int result, const char* what) {
  if (result == 0) return;
  const Nccl* n = nccl();
  throw Error(std::string(what) + ": " + (n ? n->GetErrorString(result) : "NCCL error") +
              " (code " + std::to_string(result) + ")");
}

}  // namespace herd::cuda
