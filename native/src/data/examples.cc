#include "data/examples.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "data/mixture.h"
#include "data/permutation.h"

namespace herd::data {

namespace {
constexpr uint64_t kTagExamples = 0x4578616d706cull;  // "Exampl"
}

ExampleLoader::ExampleLoader(ExampleOptions options) : o_(std::move(options)) {
  const std::vector<std::string> files = o_.shards.empty() ? list_shards(o_.folder) : o_.shards;
  for (const auto& f : files) {
    auto shard = std::make_unique<Shard>(f);
    if (!shard->has_learn_mask())
      throw std::runtime_error("shard " + f +
                               ": has no learn mask (version 1, text for pre-training); make "
                               "instruction examples with `herd data prepare --instruct`");
    if (vocab_size_ == 0) vocab_size_ = int32_t(shard->vocab_size());
    if (int32_t(shard->vocab_size()) != vocab_size_)
      throw std::runtime_error("shard " + f + ": vocab size " +
                               std::to_string(shard->vocab_size()) + " differs from the other shards' " +
                               std::to_string(vocab_size_));
    const uint32_t index = uint32_t(shards_.size());
    for (uint64_t d = 0; d < shard->doc_count(); d++) {
      const uint64_t start = shard->doc_start(d), end = shard->doc_start(d + 1);
      if (end - start >= 2) examples_.push_back({index, start, end - start});
    }
    shards_.push_back(std::move(shard));
  }
  if (examples_.empty())
    throw std::runtime_error("instruction examples in " + (o_.folder.empty() ? files.front() : o_.folder) +
                             ": no example of two tokens or more");
}

const ExampleLoader::Epoch& ExampleLoader::epoch(uint64_t e, int seq_len) {
  if (seq_len != cached_seq_len_) {
    epochs_.clear();
    cached_seq_len_ = seq_len;
  }
  auto it = epochs_.find(e);
  if (it != epochs_.end()) return it->second;
  Epoch ep;
  ep.first_row = e == 0 ? 0 : epoch(e - 1, seq_len).first_row + epochs_.at(e - 1).first.size() - 1;
  const uint64_t n = examples_.size(), row = uint64_t(seq_len) + 1;
  const uint64_t key = key_of(o_.seed, kTagExamples, e, 0);
  ep.order.resize(n);
  for (uint64_t i = 0; i < n; i++) ep.order[i] = uint32_t(permute(i, n, key));
  uint64_t used = row;  // a full row: the first example opens a new one
  for (uint64_t i = 0; i < n; i++) {
    const uint64_t len = std::min(examples_[ep.order[i]].length, row);
    if (used + len > row) {
      ep.first.push_back(uint32_t(i));
      used = 0;
    }
    used += len;
  }
  ep.first.push_back(uint32_t(n));
  if (epochs_.size() > 4) epochs_.erase(epochs_.begin());  // older epochs are not revisited
  return epochs_.emplace(e, std::move(ep)).first->second;
}

uint64_t ExampleLoader::rows_in_epoch(uint64_t e, int seq_len) {
  std::lock_guard<std::mutex> lock(mu_);
  return epoch(e, seq_len).first.size() - 1;
}

const ExampleLoader::Epoch& ExampleLoader::epoch_of(uint64_t global_row, int seq_len) {
  // Epochs hold at least one row each, so the walk ends; a resume starts it from the cache.
  uint64_t e = epochs_.empty() || cached_seq_len_ != seq_len ? 0 : epochs_.begin()->first;
  if (e > 0 && global_row < epochs_.begin()->second.first_row) e = 0;
  while (true) {
    const Epoch& ep = epoch(e, seq_len);
    if (global_row < ep.first_row + ep.first.size() - 1) return ep;
    e++;
  }
}

void ExampleLoader::fill_row(const Epoch& ep, uint64_t r, int seq_len, int32_t* out,
                             uint8_t* learn, int32_t* positions) const {
  // The row's tokens with the learn bit of each; position of each token in its example.
  const size_t row = size_t(seq_len) + 1;
  std::vector<int32_t> tokens(row, 0), pos(row, 0);
  std::vector<uint8_t> bits(row, 0);
  size_t used = 0;
  for (uint32_t i = ep.first[r]; i < ep.first[r + 1]; i++) {
    const Example& x = examples_[ep.order[i]];
    const size_t len = size_t(std::min<uint64_t>(x.length, row));
    shards_[x.shard]->read(x.start, len, tokens.data() + used);
    shards_[x.shard]->read_learn(x.start, len, bits.data() + used);
    for (size_t t = 0; t < len; t++) pos[used + t] = int32_t(t);
    used += len;
  }
  for (size_t t = used; t < row; t++) pos[t] = int32_t(t - used);  // padding: one more example
  std::copy(tokens.begin(), tokens.end(), out);
  for (int t = 0; t < seq_len; t++) {
    positions[t] = pos[t];
    // Input t is trained to predict token t + 1 if that token is learned and in its example.
    learn[t] = uint8_t(bits[t + 1] && pos[t + 1] != 0 && t + 1 < int(used));
  }
}

void ExampleLoader::examples(uint64_t step, int rank, int world, int batch, int seq_len,
                             int32_t* out, uint8_t* learn, int32_t* positions) {
  if (seq_len <= 0 || batch <= 0 || world <= 0 || rank < 0 || rank >= world)
    throw std::invalid_argument("examples: bad batch geometry");
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < batch; i++) {
    const uint64_t g = step * uint64_t(batch) * uint64_t(world) + uint64_t(rank) * batch + i;
    const Epoch& ep = epoch_of(g, seq_len);
    fill_row(ep, g - ep.first_row, seq_len, out + size_t(i) * (seq_len + 1),
             learn + size_t(i) * seq_len, positions + size_t(i) * seq_len);
  }
  served_step_ = step + 1;
}

void ExampleLoader::batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) {
  std::vector<uint8_t> learn(size_t(batch) * seq_len);
  std::vector<int32_t> positions(size_t(batch) * seq_len);
  examples(step, rank, world, batch, seq_len, out, learn.data(), positions.data());
}

std::string ExampleLoader::save_state() const {
  std::ostringstream out;
  out << "herd-examples-state 1\nseed " << o_.seed << " examples " << examples_.size()
      << " served " << served_step_ << "\n";
  return out.str();
}

void ExampleLoader::load_state(const std::string& state) {
  std::istringstream in(state);
  std::string word, w1, w2, w3;
  int version = 0;
  uint64_t seed = 0, count = 0, served = 0;
  if (!(in >> word >> version) || word != "herd-examples-state")
    throw std::runtime_error("examples state: not an instruction-example loader's state");
  if (version != 1) throw std::runtime_error("examples state: unsupported version " + std::to_string(version));
  if (!(in >> w1 >> seed >> w2 >> count >> w3 >> served) || w1 != "seed" || w2 != "examples")
    throw std::runtime_error("examples state: malformed");
  if (seed != o_.seed)
    throw std::runtime_error("examples state: saved with seed " + std::to_string(seed) +
                             ", this loader has " + std::to_string(o_.seed));
  if (count != examples_.size())
    throw std::runtime_error("examples state: saved over " + std::to_string(count) +
                             " examples, the data now has " + std::to_string(examples_.size()));
  std::lock_guard<std::mutex> lock(mu_);
  served_step_ = served;
}

}  // namespace herd::data
