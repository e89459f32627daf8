// The ranks of one machine meeting in POSIX shared memory, for the two stand-ins of NCCL
// that tests use where no GPU is: the CPU stand-in of libherd_cuda.so (cuda_standin.cc) and
// the emulated libnccl of the CUDA emulation (cuda_emulation/nccl.cc). A group is named by a
// string every rank knows (NCCL's unique id); each rank has a slot of bytes, grown as the
// collectives need, and a barrier waits for every rank, failing with a message naming where
// the others were awaited after HERD_STANDIN_TIMEOUT_SECONDS (default 120) — as NCCL's
// watchdog would, rather than a hang.
#pragma once
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

namespace herd::test {

// A name for a new group: printable, starting with '/', as shm_open wants.
inline std::string new_group_name() {
  std::random_device random;
  return "/herd-shm-group-" + std::to_string(random()) + "-" + std::to_string(random());
}

class ShmGroup {
 public:
  ShmGroup(const std::string& name, int rank, int world) : rank_(rank), world_(world) {
    if (name.empty() || name[0] != '/' || world <= 0 || rank < 0 || rank >= world)
      throw std::runtime_error("shared-memory group: bad name '" + name + "' or rank " +
                               std::to_string(rank) + " of " + std::to_string(world));
    fd_ = shm_open(name.c_str(), O_CREAT | O_RDWR, 0600);
    if (fd_ < 0) throw std::runtime_error("shm_open " + name + ": " + std::strerror(errno));
    reserve(0);
    barrier("joining the group");
    if (rank == 0) shm_unlink(name.c_str());  // every rank holds it open; nothing outlives them
  }
  ~ShmGroup() {
    if (header_) munmap(header_, mapped_);
    if (fd_ >= 0) close(fd_);
  }
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Lays the slots out `bytes` apart for the next collective, growing the memory if need be.
  // Every rank asks for the same size at the same collective; the file only grows, so a rank
  // still reading the old extent is unharmed.
  void reserve(size_t bytes) {
    const size_t need = sizeof(Header) + size_t(world_) * bytes;
    slot_bytes_ = bytes;
    if (header_ && need <= mapped_) return;
    struct stat st {};
    fstat(fd_, &st);
    if (size_t(st.st_size) < need && ftruncate(fd_, off_t(need)) != 0)
      throw std::runtime_error(std::string("shared-memory group: ftruncate: ") + std::strerror(errno));
    if (header_) munmap(header_, mapped_);
    void* at = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (at == MAP_FAILED)
      throw std::runtime_error(std::string("shared-memory group: mmap: ") + std::strerror(errno));
    header_ = static_cast<Header*>(at);  // zero-filled by ftruncate: a valid barrier
    mapped_ = need;
  }

  // Rank r's slot (after reserve(bytes) with the collective's size).
  unsigned char* slot(int r) {
    return reinterpret_cast<unsigned char*>(header_ + 1) + size_t(r) * slot_bytes_;
  }

  // Waits until every rank arrives (a sense-reversing barrier).
  void barrier(const char* where) {
    const int generation = header_->generation.load();
    if (header_->arrived.fetch_add(1) + 1 == world_) {
      header_->arrived.store(0);
      header_->generation.fetch_add(1);
      return;
    }
    const char* env = std::getenv("HERD_STANDIN_TIMEOUT_SECONDS");
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(env ? std::atoi(env) : 120);
    while (header_->generation.load() == generation) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("rank " + std::to_string(rank_) + " of " +
                                 std::to_string(world_) + " waited for the other ranks at " +
                                 where);
      sched_yield();
    }
  }

 private:
  struct Header {
    std::atomic<int> arrived;
    std::atomic<int> generation;
    char pad[56];  // slots start 64-byte aligned
  };
  int rank_, world_, fd_ = -1;
  Header* header_ = nullptr;
  size_t mapped_ = 0, slot_bytes_ = 0;
};

}  // namespace herd::test
