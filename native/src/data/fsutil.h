// File helpers shared by the data pipeline: whole-file reads and atomic writes
// (temporary name, fsync, rename, fsync of the folder), so a crash never leaves a
// half-written shard or model under its final name.
#pragma once
#include <string>
#include <string_view>

namespace herd::data {

std::string read_file(const std::string& path);  // throws naming the path
void write_file_atomic(const std::string& path, std::string_view bytes);

// Like write_file_atomic for writers that stream: open() gives a descriptor on a temporary
// name beside `path`; commit() fsyncs and renames it into place; the destructor removes the
// temporary file when commit() was never reached.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t bytes);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace herd::data
