// Shadows <dlfcn.h> for native/cuda/nccl.cu in the CPU emulation: the real NCCL cannot run on
// emulated device memory, so "libnccl.so.2" opens the emulated NCCL (nccl.cc, between the
// processes of one machine) named by HERD_EMULATED_NCCL, or nothing: without it,
// herd_cuda_nccl_available() is 0 and the checks skip the NCCL paths, as on a GPU machine
// without NCCL. Every other library loads as usual.
#pragma once
#include_next <dlfcn.h>

#include <cstdlib>
#include <cstring>

inline bool emu_refused_nccl = false;
inline void* emu_dlopen(const char* file, int flags) {
  const bool nccl = file && std::strstr(file, "libnccl");
  const char* emulated = std::getenv("HERD_EMULATED_NCCL");
  emu_refused_nccl = nccl && !(emulated && *emulated);
  if (emu_refused_nccl) return nullptr;
  return dlopen(nccl ? emulated : file, flags);
}
inline char* emu_dlerror() {
  static char why[] = "the CPU emulation of CUDA has no NCCL (HERD_EMULATED_NCCL is not set)";
  return emu_refused_nccl ? why : dlerror();
}
#define dlopen emu_dlopen
#define dlerror emu_dlerror
