#include "dist/gloo_collective.h"

#include <gloo/allreduce.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/transport/tcp/device.h>

#include <stdexcept>

namespace herd {

namespace {

std::string who(const GroupConfig& c) {
  return "rank " + std::to_string(c.rank) + " of " + std::to_string(c.world);
}

std::string seconds(std::chrono::milliseconds t) {
  std::string s = std::to_string(double(t.count()) / 1000.0);
  return s.substr(0, s.find('.') + 2) + " s";
}

}  // namespace

GlooCollective::GlooCollective(const GroupConfig& config) : config_(config) {
  if (config_.world < 1 || config_.rank < 0 || config_.rank >= config_.world)
    throw std::invalid_argument("group: rank " + std::to_string(config_.rank) +
                                " must be in [0, world = " + std::to_string(config_.world) + ")");
  if (config_.store_port <= 0 || config_.store_port > 65535)
    throw std::invalid_argument("group: rendezvous port " + std::to_string(config_.store_port) +
                                " must be in [1, 65535]");
  if (config_.timeout.count() <= 0) throw std::invalid_argument("group: timeout must be positive");
  try {
    if (config_.rank == 0) server_ = std::make_unique<TcpStoreServer>(config_.bind_host, config_.store_port);
    const std::string& store_host = config_.rank == 0 ? config_.bind_host : config_.store_host;
    store_ = std::make_unique<TcpStore>(store_host, config_.store_port, config_.timeout);
    gloo::transport::tcp::attr attr;
    attr.hostname = config_.bind_host;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(config_.rank, config_.world);
    context->setTimeout(config_.timeout);
    context->connectFullMesh(*store_, device);
    context_ = std::move(context);
  } catch (const std::exception& e) {
    throw std::runtime_error("rendezvous of " + who(config_) + " at " + config_.store_host + ":" +
                             std::to_string(config_.store_port) + " failed: " + e.what());
  }
}

GlooCollective::~GlooCollective() = default;

void GlooCollective::all_reduce_sum(float* data, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) throw std::runtime_error(failure_);
  if (config_.world == 1 || n == 0) return;
  gloo::AllreduceOptions opts(context_);
  opts.setOutput(data, n);
  opts.setReduceFunction(
      static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
  opts.setTimeout(config_.timeout);
  try {
    gloo::allreduce(opts);
  } catch (const std::exception& e) {
    broken_ = true;
    failure_ = "all-reduce on " + who(config_) + " failed: a peer rank is gone or did not " +
               "arrive within " + seconds(config_.timeout) + " (" + e.what() + ")";
    throw std::runtime_error(failure_);
  }
}

}  // namespace herd
