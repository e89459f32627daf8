// A byte-level token source over one text file (tokenizer type `bytes`, data format `text`):
// token ids are the file's bytes, vocabulary 256. Row r of step s on rank k is the window of
// seq_len + 1 bytes starting at an offset drawn from (seed, s, k, r) alone, so any step's
// batch can be recomputed on resume without replaying the ones before it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/token_source.h"

namespace herd {

class ByteTextSource : public TokenSource {
 public:
  ByteTextSource(std::vector<uint8_t> text, uint64_t seed);

  void batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) override;
  std::string save_state() const override;
  void load_state(const std::string& state) override;
  int32_t vocab_size() const override { return 256; }

 private:
  std::vector<uint8_t> text_;
  uint64_t seed_;
  uint64_t fingerprint_;  // FNV-1a of the text: resuming on different data is an error
};

}  // namespace herd
