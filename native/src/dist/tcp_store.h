// A key/value store over TCP for Gloo's rendezvous (Debian's 2022 libgloo has FileStore,
// HashStore and RedisStore, but no TCPStore). Rank 0 serves it on the rendezvous port; every
// rank, rank 0 included, talks to it through a TcpStore client. Values are write-once bytes;
// `get` and `wait` block on the server until the key is set or the deadline passes, so a
// missing peer is an error with a message, never a hang.
//
// Wire format, one request at a time per connection (integers little-endian u32):
//   request:  op (u8: 1 set, 2 get, 3 wait), key length, key, then for set: value length,
//             value; for get/wait: timeout in milliseconds
//   response: status (u8: 0 ok, 1 timed out), then for get: value length, value
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gloo/rendezvous/store.h>

namespace herd {

// Serves the store on host:port until destroyed. The constructor returns once it listens
// (and throws when it cannot: the port taken, the address not this machine's).
class TcpStoreServer {
 public:
  TcpStoreServer(const std::string& host, int port);
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;

 private:
  void accept_loop();
  void serve(int fd);

  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;  // guards values_, clients_, client_fds_
  std::condition_variable changed_;
  std::map<std::string, std::vector<char>> values_;
  std::vector<std::thread> clients_;
  std::vector<int> client_fds_;
};

// A client of TcpStoreServer. Connecting retries (the server may not be up yet, its name may
// not resolve yet) until `timeout` has passed; every later call has the same timeout.
class TcpStore : public gloo::rendezvous::Store {
 public:
  TcpStore(const std::string& host, int port, std::chrono::milliseconds timeout);
  ~TcpStore() override;

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys,
            const std::chrono::milliseconds& timeout) override;

 private:
  std::string where() const;
  void send_all(const std::string& bytes);
  void recv_all(char* out, size_t n, std::chrono::steady_clock::time_point deadline);

  std::string host_;
  int port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::mutex mu_;  // one request at a time
};

}  // namespace herd
