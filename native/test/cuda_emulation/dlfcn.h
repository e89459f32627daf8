// Shadows <dlfcn.h> for native/cuda/nccl.cu in the CPU emulation: NCCL cannot run on
// emulated device memory, so libnccl.so.2 never loads here, whether or not the machine has
// it; herd_cuda_nccl_available() is 0 and the checks skip the NCCL paths, as on a GPU machine
// without NCCL. Every other library loads as usual.
#pragma once
#include_next <dlfcn.h>

#include <cstring>

inline bool emu_refused_nccl = false;
inline void* emu_dlopen(const char* file, int flags) {
  emu_refused_nccl = file && std::strstr(file, "libnccl");
  return emu_refused_nccl ? nullptr : dlopen(file, flags);
}
inline char* emu_dlerror() {
  static char why[] = "the CPU emulation of CUDA has no NCCL";
  return emu_refused_nccl ? why : dlerror();
}
#define dlopen emu_dlopen
#define dlerror emu_dlerror
