// NCCL, loaded at run time with dlopen so the backend runs (single GPU) where NCCL is absent.
// The few types herd uses are declared here with NCCL's ABI values (nccl.h 2.x; the CI test
// test/native/cuda-compile.test.ts checks them against the wheel's nccl.h).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

namespace herd::cuda {

struct NcclId {
  char internal[128];  // ncclUniqueId
};
using NcclComm = struct ncclComm*;  // ncclComm_t
enum NcclType : int { kNcclFloat32 = 7, kNcclFloat64 = 8, kNcclBfloat16 = 9 };
enum NcclOp : int { kNcclSum = 0, kNcclAvg = 4 };

struct Nccl {
  int (*GetUniqueId)(NcclId*);
  int (*CommInitRank)(NcclComm*, int nranks, NcclId id, int rank);
  int (*CommDestroy)(NcclComm);
  int (*AllReduce)(const void*, void*, size_t, int type, int op, NcclComm, cudaStream_t);
  int (*ReduceScatter)(const void*, void*, size_t recvcount, int type, int op, NcclComm,
                       cudaStream_t);
  int (*AllGather)(const void*, void*, size_t sendcount, int type, NcclComm, cudaStream_t);
  const char* (*GetErrorString)(int);
};

// The loaded library, or null with the reason in *why (libnccl.so.2 missing, a symbol absent).
const Nccl* nccl(std::string* why = nullptr);
// Throws Error naming the call when an NCCL call fails.
void nccl_check(int result, const char* what);

}  // namespace herd::cuda
