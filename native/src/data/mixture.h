// The mixture loader: training rows drawn from several token-shard sources with fixed
// weights (the LLaMA paper's Table 1), as a herd::TokenSource.
//
// Sampling rule (docs/data.md): global row g = step·(batch·world) + rank·batch + i. Rows come
// in blocks of block_rows; block b holds exactly quota_s rows of source s (weights rounded by
// largest remainder), in an order shuffled by a generator keyed by (seed, b). Row g of source s
// is that source's k-th sample, k = b·quota_s + (rows of s before g in its block). Source s
// cuts its token stream into N_s = (tokens_s − 1) / seq_len windows of seq_len + 1 tokens;
// sample k is in epoch k / N_s and reads window π_e(k mod N_s), where π_e is a keyed Feistel
// permutation of [0, N_s) for (seed, s, epoch). Everything is a pure function of
// (seed, step, rank, row), so any rank can compute any batch with no sequential state, and
// world size 1 with batch 2B sees the rows that ranks 0 and 1 with batch B see together.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/shard.h"
#include "engine/token_source.h"

namespace herd::data {

struct MixtureSourceSpec {
  std::string name;                 // no whitespace; identifies the source in the state
  double weight = 1;                // relative; weights are normalised
  std::string folder;               // shard-*.bin files in here, in name order ...
  std::vector<std::string> shards;  // ... or these files, in this order
};

struct MixtureOptions {
  std::vector<MixtureSourceSpec> sources;
  uint64_t seed = 0;
  uint32_t block_rows = 10000;  // weight resolution: 1 / block_rows
};

// The paper's Table 1 sampling proportions for the pre-training mixture.
std::vector<std::pair<std::string, double>> llama_table1_weights();

// shard-*.bin under folder, sorted; throws when there is none.
std::vector<std::string> list_shards(const std::string& folder);

class MixtureLoader : public TokenSource {
 public:
  explicit MixtureLoader(MixtureOptions options);

  void batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;
  int32_t vocab_size() const override { return vocab_size_; }

  // Where global row g of a run with this seq_len reads from.
  struct Sample {
    int source;
    uint64_t k, epoch, window;
  };
  Sample sample(uint64_t global_row, int seq_len) const;

  // Per source: samples drawn and current epoch, after the last batch served.
  struct Position {
    std::string name;
    uint64_t tokens, windows, samples, epoch;
  };
  std::vector<Position> positions() const;
  uint64_t next_step() const;

 private:
  struct Source {
    std::string name;
    uint32_t quota = 0;
    std::vector<std::unique_ptr<Shard>> shards;
    std::vector<uint64_t> starts;  // first token of each shard in the source's stream
    uint64_t tokens = 0;
  };
  struct Block {
    std::vector<uint16_t> source;  // source of each row in the block
    std::vector<uint32_t> rank;    // rows of the same source before it in the block
  };
  Block make_block(uint64_t b) const;
  Sample locate(const Block& block, uint64_t block_id, uint64_t global_row, int seq_len) const;
  uint64_t samples_before(int s, uint64_t global_rows) const;
  void read_tokens(const Source& s, uint64_t start, uint64_t count, int32_t* out) const;

  MixtureOptions o_;
  std::vector<Source> sources_;
  int32_t vocab_size_ = 0;
  mutable std::mutex mu_;  // guards the "served" record below
  bool served_ = false;
  uint64_t served_step_ = 0, served_global_batch_ = 0;
  int served_seq_len_ = 0;
};

}  // namespace herd::data
