#include "engine/text_source.h"

#include <stdexcept>

#include "engine/rng.h"

namespace herd {

static uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

ByteTextSource::ByteTextSource(std::vector<uint8_t> text, uint64_t seed)
    : text_(std::move(text)), seed_(seed), fingerprint_(fnv1a(text_)) {}

void ByteTextSource::batch(uint64_t step, int rank, int world, int batch, int seq_len,
                           int32_t* out) {
  const size_t window = size_t(seq_len) + 1;
  if (text_.size() < window)
    throw std::invalid_argument("text data has " + std::to_string(text_.size()) +
                                " bytes, fewer than seqLen + 1 = " + std::to_string(window));
  if (rank < 0 || rank >= world) throw std::invalid_argument("rank must be in [0, world)");
  const uint64_t starts = text_.size() - window + 1;
  for (int r = 0; r < batch; r++) {
    const uint64_t row = (step * uint64_t(world) + uint64_t(rank)) * uint64_t(batch) + r;
    Rng rng(mix_seed(seed_, row));
    const uint64_t start = rng.next_u64() % starts;
    for (size_t i = 0; i < window; i++) out[r * window + i] = text_[start + i];
  }
}

std::string ByteTextSource::save_state() const {
  return "{\"kind\":\"text-bytes\",\"version\":1,\"seed\":" + std::to_string(seed_) +
         ",\"bytes\":" + std::to_string(text_.size()) + ",\"fnv1a\":\"" +
         std::to_string(fingerprint_) + "\"}";
}

// The source has no cursor (batches are a function of the step), so its state only pins the
// seed and the text; anything else means the job's data changed under the checkpoint.
void ByteTextSource::load_state(const std::string& state) {
  if (state != save_state())
    throw std::invalid_argument("data source state " + state +
                                " does not match this text source " + save_state() +
                                " (the text or the seed changed since the checkpoint)");
}

}  // namespace herd
