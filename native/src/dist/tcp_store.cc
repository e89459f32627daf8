#include "dist/tcp_store.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace herd {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum Op : uint8_t { kSet = 1, kGet = 2, kWait = 3 };
enum Status : uint8_t { kOk = 0, kTimedOut = 1 };

void put_u32(std::string& out, uint32_t x) {
  for (int i = 0; i < 4; i++) out.push_back(char((x >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t x = 0;
  for (int i = 0; i < 4; i++) x |= uint32_t(uint8_t(p[i])) << (8 * i);
  return x;
}

std::string errno_text() { return std::strerror(errno); }

// Milliseconds left until the deadline, never negative.
int64_t ms_until(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : left;
}

// Reads exactly n bytes, polling so that `keep_going` is asked every 100 ms. Returns false
// on end of stream (the peer closed), when keep_going() says stop or at the deadline.
template <typename KeepGoing>
bool read_exact(int fd, char* out, size_t n, KeepGoing keep_going) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return false;
    if (r <= 0) {
      if (!keep_going()) return false;
      continue;
    }
    ssize_t k = ::recv(fd, out + got, n - got, 0);
    if (k == 0) return false;
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return false;
    }
    got += size_t(k);
  }
  return true;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t k = ::send(fd, data, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += k;
    n -= size_t(k);
  }
  return true;
}

addrinfo* resolve(const std::string& host, int port, bool passive, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (passive) hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    *error = std::string("cannot resolve ") + host + ": " + ::gai_strerror(rc);
    return nullptr;
  }
  return found;
}

// A non-blocking connect bounded by `deadline`; returns the connected socket or -1.
int connect_before(const addrinfo* a, Clock::time_point deadline, std::string* error) {
  int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
  if (fd < 0) {
    *error = "socket: " + errno_text();
    return -1;
  }
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
  if (rc < 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, int(std::min<int64_t>(ms_until(deadline), 60000)));
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (rc == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (rc != 1 || soerr != 0) {
      errno = rc == 1 ? soerr : ETIMEDOUT;
      rc = -1;
    } else {
      rc = 0;
    }
  }
  if (rc < 0) {
    *error = errno_text();
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, flags);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace

// ---- the server ------------------------------------------------------------------------------

TcpStoreServer::TcpStoreServer(const std::string& host, int port) {
  std::string error;
  addrinfo* found = resolve(host, port, true, &error);
  if (!found) throw std::runtime_error("rendezvous store: " + error);
  for (addrinfo* a = found; a && listen_fd_ < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      listen_fd_ = fd;
    } else {
      error = errno_text();
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0)
    throw std::runtime_error("rendezvous store: cannot listen on " + host + ":" +
                             std::to_string(port) + ": " + error);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpStoreServer::~TcpStoreServer() {
  stopping_ = true;
  changed_.notify_all();
  acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : client_fds_)
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : clients_) t.join();
  ::close(listen_fd_);
}

void TcpStoreServer::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> lock(mu_);
    client_fds_.push_back(fd);
    clients_.emplace_back([this, fd] { serve(fd); });
  }
}

// One client's requests until it disconnects or the server stops.
void TcpStoreServer::serve(int fd) {
  auto running = [this] { return !stopping_.load(); };
  for (;;) {
    char head[5];
    if (!read_exact(fd, head, 5, running)) break;
    const uint8_t op = uint8_t(head[0]);
    std::string key(get_u32(head + 1), '\0');
    if (!read_exact(fd, key.data(), key.size(), running)) break;
    std::string reply;
    if (op == kSet) {
      char len[4];
      if (!read_exact(fd, len, 4, running)) break;
      std::vector<char> value(get_u32(len));
      if (!read_exact(fd, value.data(), value.size(), running)) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        values_[key] = std::move(value);
      }
      changed_.notify_all();
      reply.push_back(char(kOk));
    } else if (op == kGet || op == kWait) {
      char ms[4];
      if (!read_exact(fd, ms, 4, running)) break;
      const auto deadline = Clock::now() + milliseconds(get_u32(ms));
      std::unique_lock<std::mutex> lock(mu_);
      const bool present = changed_.wait_until(lock, deadline, [&] {
        return stopping_ || values_.count(key) > 0;
      }) && values_.count(key) > 0;
      reply.push_back(char(present ? kOk : kTimedOut));
      if (present && op == kGet) {
        const auto& value = values_[key];
        put_u32(reply, uint32_t(value.size()));
        reply.append(value.data(), value.size());
      }
    } else {
      break;  // not our protocol: drop the connection
    }
    if (!write_all(fd, reply.data(), reply.size())) break;
  }
  std::lock_guard<std::mutex> lock(mu_);  // so the destructor never shuts a reused fd
  for (auto& f : client_fds_)
    if (f == fd) f = -1;
  ::close(fd);
}

// ---- the client ------------------------------------------------------------------------------

TcpStore::TcpStore(const std::string& host, int port, milliseconds timeout)
    : host_(host), port_(port), timeout_(timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string error = "no attempt";
  auto pause = milliseconds(50);
  for (;;) {
    if (addrinfo* found = resolve(host, port, false, &error)) {
      for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next)
        fd_ = connect_before(a, std::min(deadline, Clock::now() + std::chrono::seconds(2)), &error);
      ::freeaddrinfo(found);
    }
    if (fd_ >= 0) return;
    if (Clock::now() + pause >= deadline)
      throw std::runtime_error("rendezvous: cannot reach rank 0's store at " + where() +
                               " within " + std::to_string(timeout.count()) + " ms (" + error +
                               ")");
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, milliseconds(1000));
  }
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) ::close(fd_);
}

std::string TcpStore::where() const { return host_ + ":" + std::to_string(port_); }

void TcpStore::send_all(const std::string& bytes) {
  if (!write_all(fd_, bytes.data(), bytes.size()))
    throw std::runtime_error("rendezvous: lost the connection to rank 0's store at " + where() +
                             " (" + errno_text() + ")");
}

void TcpStore::recv_all(char* out, size_t n, Clock::time_point deadline) {
  if (!read_exact(fd_, out, n, [&] { return Clock::now() < deadline; }))
    throw std::runtime_error("rendezvous: rank 0's store at " + where() +
                             (Clock::now() >= deadline ? " did not answer in time"
                                                       : " closed the connection (rank 0 gone?)"));
}

void TcpStore::set(const std::string& key, const std::vector<char>& data) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string req(1, char(kSet));
  put_u32(req, uint32_t(key.size()));
  req += key;
  put_u32(req, uint32_t(data.size()));
  req.append(data.data(), data.size());
  send_all(req);
  char status;
  recv_all(&status, 1, Clock::now() + timeout_);
}

std::vector<char> TcpStore::get(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string req(1, char(kGet));
  put_u32(req, uint32_t(key.size()));
  req += key;
  put_u32(req, uint32_t(std::min<int64_t>(timeout_.count(), UINT32_MAX)));
  send_all(req);
  // The server answers by the timeout; a little more for the answer to arrive.
  const auto deadline = Clock::now() + timeout_ + std::chrono::seconds(5);
  char status;
  recv_all(&status, 1, deadline);
  if (status != kOk)
    throw std::runtime_error("rendezvous: key '" + key + "' was not set at " + where() +
                             " within " + std::to_string(timeout_.count()) +
                             " ms (a rank did not join)");
  char len[4];
  recv_all(len, 4, deadline);
  std::vector<char> value(get_u32(len));
  recv_all(value.data(), value.size(), deadline);
  return value;
}

void TcpStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void TcpStore::wait(const std::vector<std::string>& keys, const milliseconds& requested) {
  std::lock_guard<std::mutex> lock(mu_);
  const milliseconds timeout = requested.count() > 0 ? requested : timeout_;  // 0: Gloo's "none"
  const auto deadline = Clock::now() + timeout;
  for (const auto& key : keys) {
    std::string req(1, char(kWait));
    put_u32(req, uint32_t(key.size()));
    req += key;
    put_u32(req, uint32_t(std::min<int64_t>(ms_until(deadline), UINT32_MAX)));
    send_all(req);
    char status;
    recv_all(&status, 1, deadline + std::chrono::seconds(5));
    if (status != kOk)
      throw std::runtime_error("rendezvous: key '" + key + "' was not set at " + where() +
                               " within " + std::to_string(timeout.count()) +
                               " ms (a rank did not join)");
  }
}

}  // namespace herd
