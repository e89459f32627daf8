// The instruction-example loader: rows packed with whole examples (one shard document each,
// with its learn mask), as a herd::TokenSource that answers examples().
//
// Sampling rule (docs/data.md, "Instruction examples"): epoch e visits every example once, in
// the order π_e (the keyed Feistel permutation of data/permutation.h for (seed, epoch)), and
// packs them greedily into rows of seq_len + 1 tokens: an example that does not fit in what is
// left of a row starts the next row, and what is left is padding (token 0, nothing learned).
// An example longer than a row is cut to seq_len + 1 tokens. Global row g = step·(batch·world)
// + rank·batch + i, as in the mixture loader; epoch e's rows follow epoch e − 1's. All of it is
// a pure function of (seed, seq_len, g), so a resume needs only the step.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/shard.h"
#include "engine/token_source.h"

namespace herd::data {

struct ExampleOptions {
  std::string folder;               // shard-*.bin files in here (version 2, with learn masks) ...
  std::vector<std::string> shards;  // ... or these files, in this order
  uint64_t seed = 0;
};

class ExampleLoader : public TokenSource {
 public:
  explicit ExampleLoader(ExampleOptions options);

  bool packs_examples() const override { return true; }
  void examples(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out,
                uint8_t* learn, int32_t* positions) override;
  void batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;
  int32_t vocab_size() const override { return vocab_size_; }

  uint64_t example_count() const { return examples_.size(); }
  // Rows epoch `epoch` packs into at this seq_len.
  uint64_t rows_in_epoch(uint64_t epoch, int seq_len);

 private:
  struct Example {
    uint32_t shard;
    uint64_t start, length;  // in tokens, in the shard
  };
  // One epoch's packing: row r holds order[first[r] .. first[r + 1]).
  struct Epoch {
    uint64_t first_row = 0;  // global row of its first row
    std::vector<uint32_t> order, first;
  };
  const Epoch& epoch_of(uint64_t global_row, int seq_len);
  const Epoch& epoch(uint64_t e, int seq_len);
  void fill_row(const Epoch& ep, uint64_t row, int seq_len, int32_t* out, uint8_t* learn,
                int32_t* positions) const;

  ExampleOptions o_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<Example> examples_;
  int32_t vocab_size_ = 0;
  std::mutex mu_;  // guards the epoch cache (a resume may ask for any epoch)
  int cached_seq_len_ = 0;
  std::map<uint64_t, Epoch> epochs_;
  uint64_t served_step_ = 0;
};

}  // namespace herd::data
