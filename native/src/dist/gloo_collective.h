// Collective over Gloo's TCP transport: the CPU trainer's data-parallel all-reduce. Joining
// runs the rendezvous (rank 0 serves a TcpStore on the rendezvous port, every rank publishes
// its pair addresses there) and connects a full mesh; the store stays up for the group's life.
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "dist/collective.h"
#include "dist/tcp_store.h"

namespace gloo {
class Context;
}

namespace herd {

struct GroupConfig {
  int rank = 0, world = 1;
  // Rank 0's store. Rank 0 serves it on bind_host:store_port and reaches it there itself.
  std::string store_host;
  int store_port = 0;
  // The address this rank listens on for its peers (the pod's IP).
  std::string bind_host = "127.0.0.1";
  // Bounds joining (rank 0's store reachable, every rank arrived) and every collective.
  std::chrono::milliseconds timeout{300000};
};

class GlooCollective : public Collective {
 public:
  // Blocks until every rank has joined; throws std::runtime_error naming what failed.
  explicit GlooCollective(const GroupConfig& config);
  ~GlooCollective() override;

  void all_reduce_sum(float* data, size_t n) override;
  int rank() const override { return config_.rank; }
  int world() const override { return config_.world; }

 private:
  GroupConfig config_;
  std::unique_ptr<TcpStoreServer> server_;  // rank 0 only
  std::unique_ptr<TcpStore> store_;
  std::shared_ptr<gloo::Context> context_;
  std::mutex mu_;       // one collective at a time
  bool broken_ = false; // after a failure the mesh is unusable: fail fast
  std::string failure_;
};

}  // namespace herd
