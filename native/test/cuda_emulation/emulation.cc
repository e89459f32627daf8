// The CPU emulation's engine (declared in cuda_runtime.h): fibers that run a block's CUDA
// threads, the barriers between them, shared memory, and the runtime API on host memory.
//
// A launch runs its blocks one after another on the calling OS thread. Fibers take the
// block's threads in turn: a fiber runs thread t to its end and then takes the next one, so
// a kernel without barriers costs no switch at all; when a thread must wait (a barrier or a
// warp operation that others have not reached), its fiber goes back to the scheduler, which
// resumes the earliest-started fiber that can go on, or else starts the next thread on
// another fiber. So the threads that start first run as far ahead as the barriers allow,
// and the order alternates between blocks (thread_index) to put either side of a missing
// barrier ahead. The switch is a few instructions of assembly on x86-64 (ucontext's
// swapcontext makes a system call per switch, too slow for whole training steps), ucontext
// elsewhere. Stacks are allocated once, with a guard page, and reused.
#include <sys/mman.h>
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_runtime.h"

namespace emu {
namespace {

constexpr unsigned kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 << 10;
constexpr size_t kStaticShared = 48 << 10;

// ---- context switch: save this context's registers in *from, continue `to`.

#if defined(__x86_64__)
extern "C" void emu_switch(void** from, void* to);
asm(R"(
  .text
  .globl emu_switch
  .type emu_switch, @function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_switch, .-emu_switch
)");
struct Context {
  void* sp = nullptr;
};
inline void switch_to(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
// A new stack whose first switch "returns" into entry, as if called (rsp ≡ 8 mod 16).
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15));
  *--top = nullptr;                             // entry's return address: it never returns
  *--top = reinterpret_cast<void*>(entry);      // emu_switch's ret goes here
  for (int i = 0; i < 6; i++) *--top = nullptr;  // rbp rbx r12 r13 r14 r15
  c.sp = top;
}
#else
struct Context {
  ucontext_t uc;
};
inline void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

// ---- the block scheduler, one per OS thread

const uint64_t kGo = 1;  // a fiber waiting on this (for generation 0) may run at once

struct Fiber {
  Context context;
  char* stack = nullptr;
  unsigned tid = 0;
  bool busy = false;                 // running a thread of the current block
  const uint64_t* wait_on = &kGo;    // runnable once *wait_on != wait_generation
  uint64_t wait_generation = 0;
};

struct Warp {
  int arrived = 0;
  uint64_t generation = 0;
  WarpOp op = nullptr;
  uint32_t posted = 0;  // lanes that posted args
  uint32_t exited = 0;
  void* args[32];
};

struct Scheduler {
  Context main;
  std::vector<Fiber*> fibers;  // every fiber this OS thread made, reused
  Fiber* current = nullptr;
  // The running block.
  void (*body)(void*) = nullptr;
  void* arg = nullptr;
  unsigned n = 0, next = 0, exited = 0;
  int block_arrived = 0;
  uint64_t block_generation = 0;
  uint64_t releases = 0;  // barriers and warp operations completed
  Warp warps[kMaxThreads / 32];
  uint64_t serial = 0;
  size_t dynamic_bytes = 0, static_used = 0;
  alignas(128) unsigned char dynamic_shared[kMaxDynamicShared];
  alignas(128) unsigned char static_shared[kStaticShared];
};
thread_local Scheduler* scheduler = nullptr;

Scheduler& sched() {
  if (!scheduler) scheduler = new Scheduler();  // lives as long as the OS thread's process
  return *scheduler;
}

// The k-th thread to start: in index order in even blocks, in reverse order in odd ones. The
// threads that start first run ahead of the others (a fiber only gives way when it must
// wait), so a missing barrier is seen whichever side of it the writer and the reader are:
// even blocks catch a low thread reading what a higher one has not written yet (or
// overwriting what it has not read yet), odd blocks the reverse.
unsigned thread_index(const Scheduler& s, unsigned k) { return s.serial % 2 ? s.n - 1 - k : k; }

void set_thread(unsigned tid) {
  const unsigned x = blockDim.x, xy = blockDim.x * blockDim.y;
  threadIdx = dim3(tid % x, tid / x % blockDim.y, tid / xy);
}

unsigned warp_lanes(const Scheduler& s, unsigned w) { return std::min(32u, s.n - 32 * w); }
unsigned live_lanes(const Scheduler& s, unsigned w) {
  return warp_lanes(s, w) - unsigned(__builtin_popcount(s.warps[w].exited));
}

// The warp's operation is complete once every live lane posted: run it, release the lanes.
void complete_warp(Scheduler& s, unsigned w) {
  Warp& wp = s.warps[w];
  if (wp.arrived == 0 || unsigned(wp.arrived) != live_lanes(s, w)) return;
  if (wp.op) wp.op(wp.args, wp.posted);
  wp.arrived = 0;
  wp.posted = 0;
  wp.op = nullptr;
  wp.generation++;
  s.releases++;
}
void complete_block(Scheduler& s) {
  if (s.block_arrived == 0 || unsigned(s.block_arrived) != s.n - s.exited) return;
  s.block_arrived = 0;
  s.block_generation++;
  s.releases++;
}

bool runnable(const Fiber* f) { return f->busy && *f->wait_on != f->wait_generation; }

void wait(Scheduler& s, const uint64_t* on, uint64_t generation) {
  Fiber* f = s.current;
  f->wait_on = on;
  f->wait_generation = generation;
  switch_to(f->context, s.main);
}

void thread_exit(Scheduler& s, unsigned tid) {
  s.exited++;
  s.warps[tid / 32].exited |= 1u << (tid % 32);
  complete_warp(s, tid / 32);  // the lanes still there may have been waiting for this one
  complete_block(s);
}

void fiber_main() {
  for (;;) {
    Scheduler& s = sched();
    Fiber* f = s.current;
    while (s.next < s.n) {
      f->tid = thread_index(s, s.next++);
      set_thread(f->tid);
      try {
        s.body(s.arg);
      } catch (const std::exception& e) {
        fail(e.what());
      }
      thread_exit(s, f->tid);
    }
    f->busy = false;  // parked until the scheduler hands it the next block's threads
    switch_to(f->context, s.main);
  }
}

Fiber* idle_fiber(Scheduler& s) {
  for (Fiber* f : s.fibers)
    if (!f->busy) return f;
  auto* f = new Fiber();
  const size_t page = 4096;
  void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) fail("cannot map a fiber stack");
  mprotect(m, page, PROT_NONE);  // a stack overflow faults instead of corrupting
  f->stack = static_cast<char*>(m) + page;
  make_context(f->context, f->stack, kStackBytes, fiber_main);
  s.fibers.push_back(f);
  return f;
}

void resume(Scheduler& s, Fiber* f) {
  s.current = f;
  set_thread(f->tid);
  switch_to(s.main, f->context);
  s.current = nullptr;
}

void run_block(Scheduler& s) {
  s.next = s.exited = 0;
  s.block_arrived = 0;
  for (unsigned w = 0; w < (s.n + 31) / 32; w++) s.warps[w] = Warp();
  s.serial++;
  s.static_used = 0;
  std::memset(s.dynamic_shared, 0xFF, s.dynamic_bytes);  // NaN bytes: unwritten reads show
  // Fibers in the order they started; the first one that can go on always goes first. The
  // ones before `from` are waiting, and stay so until a barrier or a warp operation completes.
  std::vector<Fiber*> active;
  size_t from = 0;
  for (;;) {
    size_t at = from;
    while (at < active.size() && !runnable(active[at])) at++;
    const uint64_t releases = s.releases;
    if (at < active.size()) {
      resume(s, active[at]);
      from = s.releases == releases ? at : 0;
      continue;
    }
    if (s.next < s.n) {
      Fiber* f = idle_fiber(s);
      f->busy = true;
      f->wait_on = &kGo;
      f->wait_generation = 0;
      f->tid = thread_index(s, s.next);
      active.push_back(f);
      resume(s, f);
      from = s.releases == releases ? active.size() - 1 : 0;
      continue;
    }
    bool done = true;
    for (Fiber* f : active) done = done && !f->busy;
    if (done) return;
    std::string who;
    for (Fiber* f : active)
      if (f->busy)
        who += " " + std::to_string(f->tid) +
               (f->wait_on == &s.block_generation ? "(__syncthreads)" : "(warp)");
    fail(("deadlock in block (" + std::to_string(blockIdx.x) + "," + std::to_string(blockIdx.y) +
          "," + std::to_string(blockIdx.z) + "): threads waiting:" + who)
             .c_str());
  }
}

// ---- device memory: host allocations, tracked so that copies can check their directions.

std::mutex memory_mutex;
std::map<uintptr_t, size_t> allocations;  // base → bytes
std::set<void*> streams, events;
thread_local cudaError_t last_error = cudaSuccess;

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) last_error = e;
  return e;
}

// Whether [p, p + bytes) lies inside one device allocation.
bool is_device(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(memory_mutex);
  const auto u = reinterpret_cast<uintptr_t>(p);
  auto it = allocations.upper_bound(u);
  if (it == allocations.begin()) return false;
  --it;
  return u >= it->first && u + bytes <= it->first + it->second;
}

}  // namespace

bool is_device_memory(const void* p, size_t bytes) { return is_device(p, bytes); }

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "CUDA emulation: %s (block %u,%u,%u thread %u,%u,%u)\n", what, blockIdx.x,
               blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z);
  std::abort();
}

void launch(dim3 grid, dim3 block, size_t shared, void (*body)(void*), void* arg) {
  const size_t threads = size_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 ||
      grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    record(cudaErrorInvalidConfiguration);
    return;
  }
  if (shared > kMaxDynamicShared) {
    record(cudaErrorInvalidValue);
    return;
  }
  Scheduler& s = sched();
  if (s.current) fail("a launch from inside a kernel");
  launches++;
  gridDim = grid;
  blockDim = block;
  s.body = body;
  s.arg = arg;
  s.n = unsigned(threads);
  s.dynamic_bytes = shared;
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        blockIdx = dim3(x, y, z);
        run_block(s);
      }
  blockIdx = threadIdx = dim3(0);
}

void sync_block() {
  Scheduler& s = sched();
  if (!s.current) fail("__syncthreads outside a kernel");
  const uint64_t generation = s.block_generation;
  s.block_arrived++;
  complete_block(s);
  if (s.block_generation == generation) wait(s, &s.block_generation, generation);
}

void warp_collective(void* args, WarpOp op) {
  Scheduler& s = sched();
  if (!s.current) fail("a warp operation outside a kernel");
  const unsigned tid = s.current->tid, w = tid / 32, l = tid % 32;
  Warp& wp = s.warps[w];
  if (wp.arrived == 0) wp.op = op;
  else if (wp.op != op) fail("the lanes of a warp are at different warp-level operations");
  wp.args[l] = args;
  wp.posted |= 1u << l;
  wp.arrived++;
  const uint64_t generation = wp.generation;
  complete_warp(s, w);
  if (wp.generation == generation) wait(s, &wp.generation, generation);
}

uint64_t shuffle(uint64_t value, int source, uint32_t mask) {
  Shuffle me{value, 0, source, mask};
  warp_collective(&me, [](void* const* args, uint32_t lanes) {
    for (int l = 0; l < 32; l++) {
      if (!(lanes >> l & 1)) continue;
      auto* a = static_cast<Shuffle*>(args[l]);
      // Every lane that takes part must be named in the mask, and only those.
      if ((a->mask & lanes) != lanes || (a->mask & ~lanes) != 0)
        fail("a shuffle's mask does not name exactly the lanes that execute it");
      const int src = a->source;
      a->result = src >= 0 && src < 32 && (lanes >> src & 1)
                      ? static_cast<Shuffle*>(args[src])->value
                      : ~uint64_t(0);  // NaN bits
    }
  });
  return me.result;
}

unsigned char* dynamic_shared_base() { return sched().dynamic_shared; }

void* allocate_static_shared(size_t bytes, size_t align) {
  Scheduler& s = sched();
  const size_t at = (s.static_used + align - 1) / align * align;
  if (at + bytes > kStaticShared) fail("more than 48 KB of static shared memory");
  s.static_used = at + bytes;
  std::memset(s.static_shared + at, 0xFF, bytes);  // NaN bytes
  return s.static_shared + at;
}

uint64_t block_serial() { return sched().serial; }

bool in_shared(const void* p, size_t bytes) {
  const Scheduler& s = sched();
  const auto* c = static_cast<const unsigned char*>(p);
  return (c >= s.dynamic_shared && c + bytes <= s.dynamic_shared + s.dynamic_bytes) ||
         (c >= s.static_shared && c + bytes <= s.static_shared + s.static_used);
}

// Checks the value only: a launch (a lambda here) does not know which kernel it runs, so it
// checks its shared memory against the hardware's limit, not against this kernel's opt-in.
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  if (!kernel || attribute != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      size_t(value) > kMaxDynamicShared)
    return record(cudaErrorInvalidValue);
  return cudaSuccess;
}

}  // namespace emu

using namespace emu;

void __syncwarp(unsigned mask) {
  warp_collective(&mask, [](void* const* args, uint32_t lanes) {
    for (int l = 0; l < 32; l++)
      if ((lanes >> l & 1) && (*static_cast<unsigned*>(args[l]) & lanes) != lanes)
        fail("__syncwarp's mask leaves out a lane that executes it");
  });
}

// ---- runtime API

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice);
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  }
  return "unknown error";
}

// 256-byte aligned, as cudaMalloc's; filled with NaN bytes (a GPU's is uninitialised).
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  if (!m) return record(cudaErrorMemoryAllocation);
  std::memset(m, 0xFF, bytes);
  std::lock_guard<std::mutex> lock(memory_mutex);
  allocations[reinterpret_cast<uintptr_t>(m)] = bytes;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(memory_mutex);
  if (!allocations.erase(reinterpret_cast<uintptr_t>(p)))
    return record(cudaErrorInvalidDevicePointer);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool dst_device = is_device(dst, bytes), src_device = is_device(src, bytes);
  bool ok = false;
  switch (kind) {
    case cudaMemcpyHostToHost: ok = !dst_device && !src_device; break;
    case cudaMemcpyHostToDevice: ok = dst_device && !src_device; break;
    case cudaMemcpyDeviceToHost: ok = !dst_device && src_device; break;
    case cudaMemcpyDeviceToDevice: ok = dst_device && src_device; break;
    case cudaMemcpyDefault: ok = true; break;
  }
  if (!ok) return record(cudaErrorInvalidMemcpyDirection);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device(p, bytes)) return record(cudaErrorInvalidValue);
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t) {
  return cudaMemset(p, value, bytes);
}

// Streams and events: handles only. Every call has completed when it returns, so waiting is
// always already done; the handles are checked (a destroyed one is an error, as on a GPU).
namespace {
cudaError_t create(std::set<void*>& in, void** out) {
  std::lock_guard<std::mutex> lock(memory_mutex);
  *out = new char;
  in.insert(*out);
  return cudaSuccess;
}
cudaError_t destroy(std::set<void*>& in, void* h) {
  std::lock_guard<std::mutex> lock(memory_mutex);
  if (!in.erase(h)) return record(cudaErrorInvalidResourceHandle);
  delete static_cast<char*>(h);
  return cudaSuccess;
}
cudaError_t valid(const std::set<void*>& in, void* h, bool null_ok) {
  std::lock_guard<std::mutex> lock(memory_mutex);
  if ((h == nullptr && null_ok) || in.count(h)) return cudaSuccess;
  return record(cudaErrorInvalidResourceHandle);
}
}  // namespace

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  return create(streams, reinterpret_cast<void**>(s));
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) { return destroy(streams, s); }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return valid(streams, s, true); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  const cudaError_t r = valid(streams, s, true);
  return r != cudaSuccess ? r : valid(events, e, false);
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return create(events, reinterpret_cast<void**>(e)); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  const cudaError_t r = valid(streams, s, true);
  return r != cudaSuccess ? r : valid(events, e, false);
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return valid(events, e, false); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { return destroy(events, e); }
