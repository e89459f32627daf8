// The text → token-shard pipeline behind `herd data prepare`: exact deduplication of
// documents and lines (the CCNet step of the LLaMA paper), quality filters in the spirit of
// C4, tokenization on every core, and shards written atomically. Documents arrive in
// batches, in input order; the output is the same for any thread count.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "data/tokenizer.h"

namespace herd::data {

struct PrepareOptions {
  std::string tokenizer_path;
  std::string out_dir;                    // must exist; shards go in as shard-NNNNNN.bin
  uint64_t shard_tokens = uint64_t(1) << 27;  // a shard closes at the first document end past this
  bool bos = true;                        // BOS before each document
  bool eos = true;                        // EOS after each document
  int threads = 0;                        // 0: every core
  // Deduplication, exact, by 64-bit FNV-1a hash of the bytes.
  bool dedup_docs = true;   // drop a document seen before
  bool dedup_lines = false; // drop a non-blank line seen before, in any earlier document
  // Filters; 0 turns one off. Blank lines are kept by every line rule.
  uint64_t max_line_chars = 0;  // drop a document with a line longer than this
  double max_bad_chars = 0.1;   // drop a document whose share of bad characters is above this
  uint64_t line_min_words = 0;  // drop lines with fewer words (C4: 5)
  bool terminal_punct = false;  // drop lines not ending in . ! ? or " (C4: on)
  uint64_t min_words = 5;       // drop a document left with fewer words
};

// What is left after each stage, in pipeline order (stage 0 is the input).
struct StageCount {
  std::string name;
  uint64_t docs = 0, lines = 0, bytes = 0;
};

struct ShardInfo {
  std::string file;  // name inside out_dir
  uint64_t tokens = 0, docs = 0;
};

struct PrepareStats {
  std::vector<StageCount> stages;
  std::vector<ShardInfo> shards;
  uint64_t tokens = 0;
  int32_t vocab_size = 0;
};

class Preparer {
 public:
  explicit Preparer(PrepareOptions options);
  // Runs one batch of documents through every stage and appends the survivors' tokens.
  void add(std::vector<std::string> docs);
  // Writes the last shard and returns the counts. No add() after this.
  PrepareStats finish();

  const PrepareStats& stats() const { return stats_; }

 private:
  void flush_shard();

  PrepareOptions o_;
  std::unique_ptr<Tokenizer> tok_;
  std::unordered_set<uint64_t> seen_docs_, seen_lines_;
  std::vector<int32_t> shard_tokens_;
  std::vector<uint64_t> shard_docs_{0};
  PrepareStats stats_;
  bool finished_ = false;
};

// Exposed for tests and docs: the building blocks of the filters.
uint64_t count_words(const char* begin, const char* end);
bool is_blank(const char* begin, const char* end);
bool ends_with_terminal_punct(const char* begin, const char* end);
// Code points in [begin, end) and how many of them are bad: invalid UTF-8 (per byte), U+FFFD,
// and control characters other than tab, newline and carriage return.
void count_chars(const char* begin, const char* end, uint64_t* chars, uint64_t* bad);

}  // namespace herd::data
