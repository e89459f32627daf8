// libnccl for the CPU emulation of CUDA: the seven calls native/cuda/nccl.cu binds, between
// the processes of one machine, over the shared memory of native/test/shm_group.h. Built as
// its own library; the emulation's dlopen (dlfcn.h here) opens it for "libnccl.so.2" when
// HERD_EMULATED_NCCL names it. Device memory is host memory in the emulation and every call
// completes before it returns, so the streams are ignored. Reductions sum in rank order
// (ncclAvg then multiplies by 1/nranks, as the CPU backend's average does); in-place calls
// (recvbuff inside sendbuff, or the reverse, as NCCL allows) work because every rank copies
// its input to its slot before anyone writes an output.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "../shm_group.h"

namespace {

// NCCL's ABI values (nccl.h 2.x), as native/cuda/nccl.cuh declares them.
enum : int { kSuccess = 0, kSystemError = 2, kInvalidArgument = 4 };
enum : int { kFloat32 = 7, kFloat64 = 8, kBfloat16 = 9 };
enum : int { kSum = 0, kAvg = 4 };

struct UniqueId {
  char internal[128];
};

thread_local std::string last_error;

size_t element_bytes(int type) {
  return type == kFloat32 ? 4 : type == kFloat64 ? 8 : type == kBfloat16 ? 2 : 0;
}

// out[i] = (Σ_r slot_r[offset + i]) · scale, in rank order, for float or double elements.
template <class X>
void reduce(herd::test::ShmGroup& g, size_t offset, size_t n, X scale, void* out) {
  X* y = static_cast<X*>(out);
  for (size_t i = 0; i < n; i++) {
    X s = reinterpret_cast<const X*>(g.slot(0))[offset + i];
    for (int r = 1; r < g.world(); r++) s += reinterpret_cast<const X*>(g.slot(r))[offset + i];
    y[i] = scale == X(1) ? s : s * scale;
  }
}

// Reduces `count` elements per rank, writing `n` of them from `offset` to `out`.
int reduce_into(herd::test::ShmGroup& g, const void* send, size_t count, size_t offset, size_t n,
                int type, int op, void* out, const char* what) {
  const size_t bytes = element_bytes(type);
  if ((type != kFloat32 && type != kFloat64) || (op != kSum && op != kAvg)) {
    last_error = std::string(what) + ": only sum and avg of float32 and float64 are emulated";
    return kInvalidArgument;
  }
  g.reserve(count * bytes);
  std::memcpy(g.slot(g.rank()), send, count * bytes);
  g.barrier(what);
  if (type == kFloat32)
    reduce<float>(g, offset, n, op == kAvg ? 1.0f / float(g.world()) : 1.0f, out);
  else
    reduce<double>(g, offset, n, op == kAvg ? 1.0 / double(g.world()) : 1.0, out);
  g.barrier(what);  // no rank overwrites its slot while another reads it
  return kSuccess;
}

template <class F>
int guarded(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    last_error = e.what();
    return kSystemError;
  }
}

}  // namespace

extern "C" {

using Comm = herd::test::ShmGroup*;

int ncclGetUniqueId(UniqueId* id) {
  const std::string name = herd::test::new_group_name();
  std::memset(id->internal, 0, sizeof id->internal);
  std::memcpy(id->internal, name.data(), name.size());
  return kSuccess;
}

int ncclCommInitRank(Comm* comm, int nranks, UniqueId id, int rank) {
  return guarded([&] {
    const std::string name(id.internal, strnlen(id.internal, sizeof id.internal));
    *comm = new herd::test::ShmGroup(name, rank, nranks);
    return kSuccess;
  });
}

int ncclCommDestroy(Comm comm) {
  delete comm;
  return kSuccess;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, Comm comm,
                  void* /*stream*/) {
  return guarded([&] {
    return reduce_into(*comm, send, count, 0, count, type, op, recv, "ncclAllReduce");
  });
}

int ncclReduceScatter(const void* send, void* recv, size_t recvcount, int type, int op, Comm comm,
                      void* /*stream*/) {
  return guarded([&] {
    const size_t count = recvcount * size_t(comm->world());
    return reduce_into(*comm, send, count, size_t(comm->rank()) * recvcount, recvcount, type, op,
                       recv, "ncclReduceScatter");
  });
}

int ncclAllGather(const void* send, void* recv, size_t sendcount, int type, Comm comm,
                  void* /*stream*/) {
  return guarded([&] {
    const size_t bytes = sendcount * element_bytes(type);
    if (bytes == 0 && sendcount != 0) {
      last_error = "ncclAllGather: unknown type " + std::to_string(type);
      return kInvalidArgument;
    }
    comm->reserve(bytes);
    std::memcpy(comm->slot(comm->rank()), send, bytes);
    comm->barrier("ncclAllGather");
    for (int r = 0; r < comm->world(); r++)
      std::memcpy(static_cast<unsigned char*>(recv) + size_t(r) * bytes, comm->slot(r), bytes);
    comm->barrier("ncclAllGather");
    return kSuccess;
  });
}

const char* ncclGetErrorString(int result) {
  if (result == kSuccess) return "no error";
  return last_error.empty() ? "emulated NCCL error" : last_error.c_str();
}

}  // extern "C"
