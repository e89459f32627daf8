// Token shards: the binary files `herd data prepare` writes and the loader reads. The layout
// is specified in docs/formats.md ("Token shards"); all integers are little-endian.
//
//   [0, 64)        header (ShardHeader below)
//   [64, ...)      token_count token ids, uint16 or uint32 (token_bytes)
//   align 8        doc_count + 1 uint64 document starts, in tokens: 0, ..., token_count
//   version 2      ⌈token_count / 8⌉ bytes of learn mask: bit i (LSB first) set where token i
//                  is a target to learn (an instruction example's response)
//
// Version 1 is plain text for pre-training; version 2 (instruction examples, one document
// each) adds the mask. A shard is opened by mapping it; every structural fact is checked at
// open, token ids are checked against vocab_size as they are read, and verify() checks the
// payload hash. Any problem is a ShardError naming the file and the byte offset where it was
// found.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace herd::data {

constexpr char kShardMagic[8] = {'H', 'E', 'R', 'D', 'T', 'O', 'K', '\0'};
constexpr uint32_t kShardVersion = 1;            // token ids and documents
constexpr uint32_t kShardVersionLearnMask = 2;   // and a learn mask
constexpr uint64_t kShardHeaderBytes = 64;

struct ShardHeader {
  char magic[8];           // "HERDTOK\0"
  uint32_t version;        // kShardVersion or kShardVersionLearnMask
  uint32_t token_bytes;    // 2: uint16 ids (vocab_size <= 65536), 4: uint32 ids
  uint64_t token_count;    // ids in the file
  uint64_t doc_count;      // documents; the index holds doc_count + 1 starts
  uint32_t vocab_size;     // every id is < vocab_size
  uint32_t reserved0;      // 0
  uint64_t payload_fnv1a;  // FNV-1a 64 of bytes [64, end of file)
  uint8_t reserved[16];    // 0
};
static_assert(sizeof(ShardHeader) == kShardHeaderBytes, "shard header is 64 bytes");

class ShardError : public std::runtime_error {
 public:
  ShardError(const std::string& path, uint64_t offset, const std::string& problem)
      : std::runtime_error("shard " + path + ": " + problem + " at byte offset " +
                           std::to_string(offset)) {}
};

// FNV-1a, 64 bit: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
uint64_t fnv1a64(const void* data, size_t bytes, uint64_t h = 0xcbf29ce484222325ull);

uint64_t shard_index_offset(uint64_t token_count, uint32_t token_bytes);
uint64_t shard_file_bytes(uint64_t token_count, uint64_t doc_count, uint32_t token_bytes,
                          bool learn_mask = false);

// Writes a shard atomically (temporary name, fsync, rename). doc_starts holds doc_count + 1
// entries, the first 0 and the last tokens.size(). With `learn` (one 0/1 per token) the shard
// is version 2 and carries the mask.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<uint64_t>& doc_starts, uint32_t vocab_size,
                 const std::vector<uint8_t>* learn = nullptr);

class Shard {
 public:
  explicit Shard(const std::string& path);  // maps the file and checks its structure
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  const std::string& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  uint64_t token_count() const { return header_.token_count; }
  uint64_t doc_count() const { return header_.doc_count; }
  uint32_t vocab_size() const { return header_.vocab_size; }
  uint64_t doc_start(uint64_t doc) const;  // doc in [0, doc_count]
  bool has_learn_mask() const { return header_.version == kShardVersionLearnMask; }

  // Copies ids [start, start + count) into out, checking each against vocab_size.
  void read(uint64_t start, uint64_t count, int32_t* out) const;
  // Copies the learn bits of tokens [start, start + count) into out as 0/1 (all 1 when the
  // shard has no mask: pre-training text learns every token).
  void read_learn(uint64_t start, uint64_t count, uint8_t* out) const;
  // Hashes the payload and checks every id: the full check `herd data verify` runs.
  void verify() const;

 private:
  uint64_t token_offset(uint64_t i) const { return kShardHeaderBytes + i * header_.token_bytes; }
  uint64_t mask_offset() const;
  std::string path_;
  ShardHeader header_{};
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace herd::data
