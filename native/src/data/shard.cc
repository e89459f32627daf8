#include "data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "data/fsutil.h"

namespace herd::data {

uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h) {
  auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < bytes; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t shard_index_offset(uint64_t token_count, uint32_t token_bytes) {
  uint64_t end = kShardHeaderBytes + token_count * token_bytes;
  return (end + 7) & ~uint64_t(7);
}

uint64_t shard_file_bytes(uint64_t token_count, uint64_t doc_count, uint32_t token_bytes,
                          bool learn_mask) {
  return shard_index_offset(token_count, token_bytes) + (doc_count + 1) * 8 +
         (learn_mask ? (token_count + 7) / 8 : 0);
}

void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<uint64_t>& doc_starts, uint32_t vocab_size,
                 const std::vector<uint8_t>* learn) {
  if (doc_starts.empty() || doc_starts.front() != 0 || doc_starts.back() != tokens.size())
    throw std::logic_error("write_shard: document starts must run from 0 to the token count");
  if (learn && learn->size() != tokens.size())
    throw std::logic_error("write_shard: the learn mask needs one entry per token");
  ShardHeader h{};
  std::memcpy(h.magic, kShardMagic, sizeof h.magic);
  h.version = learn ? kShardVersionLearnMask : kShardVersion;
  h.token_bytes = vocab_size <= 65536 ? 2 : 4;
  h.token_count = tokens.size();
  h.doc_count = doc_starts.size() - 1;
  h.vocab_size = vocab_size;

  // The payload in memory first: its hash belongs in the header that precedes it.
  std::string payload(
      shard_file_bytes(h.token_count, h.doc_count, h.token_bytes, learn) - kShardHeaderBytes, '\0');
  auto* p = reinterpret_cast<uint8_t*>(payload.data());
  if (h.token_bytes == 2) {
    for (size_t i = 0; i < tokens.size(); i++) {
      auto id = static_cast<uint16_t>(tokens[i]);
      std::memcpy(p + 2 * i, &id, 2);
    }
  } else {
    std::memcpy(p, tokens.data(), tokens.size() * 4);
  }
  uint64_t index = shard_index_offset(h.token_count, h.token_bytes) - kShardHeaderBytes;
  std::memcpy(p + index, doc_starts.data(), doc_starts.size() * 8);
  if (learn) {
    uint8_t* mask = p + index + doc_starts.size() * 8;
    for (size_t i = 0; i < learn->size(); i++)
      if ((*learn)[i]) mask[i / 8] |= uint8_t(1u << (i % 8));
  }
  h.payload_fnv1a = fnv1a64(payload.data(), payload.size());

  AtomicFile f(path);
  f.write(&h, sizeof h);
  f.write(payload.data(), payload.size());
  f.commit();
}

Shard::Shard(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("shard " + path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error("shard " + path + ": cannot stat: " + std::strerror(errno));
  }
  size_ = uint64_t(st.st_size);
  if (size_ < kShardHeaderBytes) {
    ::close(fd);
    throw ShardError(path, size_, "truncated: the 64-byte header ends early, file has " +
                                      std::to_string(size_) + " bytes");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw std::runtime_error("shard " + path + ": cannot map: " + std::strerror(errno));
  data_ = static_cast<const uint8_t*>(m);
  try {
    std::memcpy(&header_, data_, sizeof header_);
    if (std::memcmp(header_.magic, kShardMagic, sizeof kShardMagic) != 0)
      throw ShardError(path, 0, "not a herd token shard (bad magic)");
    if (header_.version != kShardVersion && header_.version != kShardVersionLearnMask)
      throw ShardError(path, 8, "unsupported version " + std::to_string(header_.version) +
                                    " (this build reads " + std::to_string(kShardVersion) +
                                    " and " + std::to_string(kShardVersionLearnMask) + ")");
    if (header_.token_bytes != 2 && header_.token_bytes != 4)
      throw ShardError(path, 12, "token width " + std::to_string(header_.token_bytes) +
                                     " bytes is neither 2 nor 4");
    if (header_.vocab_size == 0 || (header_.token_bytes == 2 && header_.vocab_size > 65536))
      throw ShardError(path, 32, "vocab size " + std::to_string(header_.vocab_size) +
                                     " does not fit the token width");
    // Counts so large the size computation would overflow cannot be honest.
    if (header_.token_count > (uint64_t(1) << 56) || header_.doc_count > (uint64_t(1) << 56))
      throw ShardError(path, 16, "implausible token or document count");
    uint64_t expected = shard_file_bytes(header_.token_count, header_.doc_count,
                                         header_.token_bytes, has_learn_mask());
    if (size_ < expected)
      throw ShardError(path, size_, "truncated: header promises " + std::to_string(expected) +
                                        " bytes, file ends");
    if (size_ > expected)
      throw ShardError(path, expected, "trailing bytes after the last section (file has " +
                                           std::to_string(size_) + ")");
    // The document index: starts at 0, never decreases, ends at token_count.
    uint64_t index = shard_index_offset(header_.token_count, header_.token_bytes);
    uint64_t prev = 0;
    for (uint64_t d = 0; d <= header_.doc_count; d++) {
      uint64_t s = doc_start(d);
      bool bad = (d == 0 && s != 0) || s < prev || s > header_.token_count ||
                 (d == header_.doc_count && s != header_.token_count);
      if (bad)
        throw ShardError(path, index + 8 * d, "document index entry " + std::to_string(d) + " is " +
                                                  std::to_string(s) + " (previous " +
                                                  std::to_string(prev) + ", token count " +
                                                  std::to_string(header_.token_count) + ")");
      prev = s;
    }
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = nullptr;
    throw;
  }
}

Shard::~Shard() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

uint64_t Shard::doc_start(uint64_t doc) const {
  uint64_t s;
  std::memcpy(&s, data_ + shard_index_offset(header_.token_count, header_.token_bytes) + 8 * doc, 8);
  return s;
}

void Shard::read(uint64_t start, uint64_t count, int32_t* out) const {
  if (start + count > header_.token_count)
    throw std::out_of_range("shard " + path_ + ": read past the last token");
  const uint8_t* p = data_ + token_offset(start);
  for (uint64_t i = 0; i < count; i++) {
    uint32_t id;
    if (header_.token_bytes == 2) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      id = v;
    } else {
      std::memcpy(&id, p + 4 * i, 4);
    }
    if (id >= header_.vocab_size)
      throw ShardError(path_, token_offset(start + i),
                       "token id " + std::to_string(id) + " is not below the vocab size " +
                           std::to_string(header_.vocab_size));
    out[i] = int32_t(id);
  }
}

uint64_t Shard::mask_offset() const {
  return shard_index_offset(header_.token_count, header_.token_bytes) + (header_.doc_count + 1) * 8;
}

void Shard::read_learn(uint64_t start, uint64_t count, uint8_t* out) const {
  if (start + count > header_.token_count)
    throw std::out_of_range("shard " + path_ + ": read past the last token");
  if (!has_learn_mask()) {
    std::fill(out, out + count, uint8_t(1));
    return;
  }
  const uint8_t* mask = data_ + mask_offset();
  for (uint64_t i = 0; i < count; i++) out[i] = (mask[(start + i) / 8] >> ((start + i) % 8)) & 1;
}

void Shard::verify() const {
  // Ids first: an id out of range has an exact offset, a hash mismatch only a region.
  std::vector<int32_t> buf(1 << 16);
  for (uint64_t s = 0; s < header_.token_count; s += buf.size())
    read(s, std::min<uint64_t>(buf.size(), header_.token_count - s), buf.data());
  uint64_t h = fnv1a64(data_ + kShardHeaderBytes, size_ - kShardHeaderBytes);
  if (h != header_.payload_fnv1a)
    throw ShardError(path_, kShardHeaderBytes,
                     "payload hash mismatch (corrupt data somewhere from here to the end)");
}

}  // namespace herd::data
