#include "data/mixture.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "data/permutation.h"

namespace herd::data {

namespace {

constexpr uint64_t kTagBlock = 0x426c6f636bull;   // "Block"
constexpr uint64_t kTagWindow = 0x57696e646full;  // "Windo"

bool has_space(const std::string& s) {
  return s.empty() || std::any_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

}  // namespace

std::vector<std::pair<std::string, double>> llama_table1_weights() {
  return {{"commoncrawl", 67.0}, {"c4", 15.0},    {"github", 4.5},        {"wikipedia", 4.5},
          {"books", 4.5},        {"arxiv", 2.5},  {"stackexchange", 2.0}};
}

std::vector<std::string> list_shards(const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw std::runtime_error("shard folder " + folder + " does not exist");
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("shard-", 0) == 0 && name.size() > 10 && name.substr(name.size() - 4) == ".bin")
      out.push_back(e.path().string());
  }
  if (ec) throw std::runtime_error("cannot list shard folder " + folder + ": " + ec.message());
  if (out.empty()) throw std::runtime_error("shard folder " + folder + " has no shard-*.bin files");
  std::sort(out.begin(), out.end());
  return out;
}

MixtureLoader::MixtureLoader(MixtureOptions options) : o_(std::move(options)) {
  if (o_.sources.empty()) throw std::invalid_argument("mixture: no sources");
  if (o_.sources.size() > 65535) throw std::invalid_argument("mixture: too many sources");
  if (o_.block_rows == 0) throw std::invalid_argument("mixture: block_rows must be positive");
  double total = 0;
  for (const auto& s : o_.sources) {
    if (has_space(s.name)) throw std::invalid_argument("mixture: source name '" + s.name + "' is empty or has whitespace");
    if (!(s.weight > 0) || !std::isfinite(s.weight))
      throw std::invalid_argument("mixture: source " + s.name + " has weight " + std::to_string(s.weight) + "; weights must be positive");
    total += s.weight;
  }
  // Quotas per block by largest remainder, so they sum to exactly block_rows.
  const uint32_t m = o_.block_rows;
  std::vector<double> exact;
  std::vector<uint32_t> quota;
  uint32_t given = 0;
  for (const auto& s : o_.sources) {
    exact.push_back(s.weight / total * m);
    quota.push_back(uint32_t(std::floor(exact.back())));
    given += quota.back();
  }
  std::vector<size_t> order(quota.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return exact[a] - quota[a] > exact[b] - quota[b];
  });
  for (size_t i = 0; given < m; i++, given++) quota[order[i % order.size()]]++;

  for (size_t i = 0; i < o_.sources.size(); i++) {
    const auto& spec = o_.sources[i];
    for (size_t j = 0; j < i; j++)
      if (o_.sources[j].name == spec.name) throw std::invalid_argument("mixture: source " + spec.name + " is listed twice");
    if (quota[i] == 0)
      throw std::invalid_argument("mixture: source " + spec.name + "'s weight is below the resolution 1/" + std::to_string(m));
    Source s;
    s.name = spec.name;
    s.quota = quota[i];
    std::vector<std::string> files = spec.shards.empty() ? list_shards(spec.folder) : spec.shards;
    for (const auto& f : files) {
      auto shard = std::make_unique<Shard>(f);
      if (vocab_size_ == 0) vocab_size_ = int32_t(shard->vocab_size());
      if (int32_t(shard->vocab_size()) != vocab_size_)
        throw std::runtime_error("shard " + f + ": vocab size " + std::to_string(shard->vocab_size()) +
                                 " differs from the other shards' " + std::to_string(vocab_size_));
      s.starts.push_back(s.tokens);
      s.tokens += shard->token_count();
      s.shards.push_back(std::move(shard));
    }
    if (s.tokens < 2) throw std::runtime_error("mixture: source " + s.name + " has fewer than 2 tokens");
    sources_.push_back(std::move(s));
  }
}

MixtureLoader::Block MixtureLoader::make_block(uint64_t b) const {
  const uint32_t m = o_.block_rows;
  Block block;
  block.source.reserve(m);
  for (size_t s = 0; s < sources_.size(); s++) block.source.insert(block.source.end(), sources_[s].quota, uint16_t(s));
  // Fisher–Yates with the counter-based stream of (seed, block).
  const uint64_t key = key_of(o_.seed, kTagBlock, b, 0);
  for (uint32_t i = m - 1; i > 0; i--) {
    uint64_t j = splitmix64(key + i * 0x9e3779b97f4a7c15ull) % (uint64_t(i) + 1);
    std::swap(block.source[i], block.source[j]);
  }
  block.rank.resize(m);
  std::vector<uint32_t> seen(sources_.size(), 0);
  for (uint32_t i = 0; i < m; i++) block.rank[i] = seen[block.source[i]]++;
  return block;
}

MixtureLoader::Sample MixtureLoader::locate(const Block& block, uint64_t block_id, uint64_t g,
                                            int seq_len) const {
  const uint64_t i = g % o_.block_rows;
  const int s = block.source[i];
  const Source& src = sources_[s];
  const uint64_t k = block_id * src.quota + block.rank[i];
  const uint64_t windows = (src.tokens - 1) / uint64_t(seq_len);
  if (windows == 0)
    throw std::runtime_error("mixture: source " + src.name + " has " + std::to_string(src.tokens) +
                             " tokens, fewer than one row of seq_len + 1 = " + std::to_string(seq_len + 1));
  const uint64_t epoch = k / windows;
  const uint64_t window = permute(k % windows, windows, key_of(o_.seed, kTagWindow, uint64_t(s), epoch));
  return {s, k, epoch, window};
}

MixtureLoader::Sample MixtureLoader::sample(uint64_t g, int seq_len) const {
  const uint64_t block_id = g / o_.block_rows;
  return locate(make_block(block_id), block_id, g, seq_len);
}

void MixtureLoader::read_tokens(const Source& s, uint64_t start, uint64_t count, int32_t* out) const {
  size_t i = size_t(std::upper_bound(s.starts.begin(), s.starts.end(), start) - s.starts.begin()) - 1;
  while (count > 0) {
    const Shard& shard = *s.shards[i];
    uint64_t local = start - s.starts[i];
    uint64_t n = std::min(count, shard.token_count() - local);
    shard.read(local, n, out);
    out += n, start += n, count -= n;
    i++;
  }
}

void MixtureLoader::batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) {
  if (world <= 0 || rank < 0 || rank >= world || batch <= 0 || seq_len <= 0)
    throw std::invalid_argument("mixture: batch needs 0 <= rank < world, batch > 0 and seq_len > 0");
  const uint64_t global_batch = uint64_t(batch) * uint64_t(world);
  const uint64_t first = step * global_batch + uint64_t(rank) * uint64_t(batch);
  const uint64_t m = o_.block_rows;
  Block block;
  uint64_t block_id = UINT64_MAX;
  for (int i = 0; i < batch; i++) {
    const uint64_t g = first + uint64_t(i);
    if (g / m != block_id) block = make_block(block_id = g / m);
    const Sample at = locate(block, block_id, g, seq_len);
    read_tokens(sources_[at.source], at.window * uint64_t(seq_len), uint64_t(seq_len) + 1,
                out + size_t(i) * size_t(seq_len + 1));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!served_ || step >= served_step_) {
    served_ = true;
    served_step_ = step;
    served_global_batch_ = global_batch;
    served_seq_len_ = seq_len;
  }
}

uint64_t MixtureLoader::samples_before(int s, uint64_t rows) const {
  const uint64_t m = o_.block_rows;
  uint64_t n = (rows / m) * sources_[s].quota;
  if (rows % m) {
    Block block = make_block(rows / m);
    for (uint64_t i = 0; i < rows % m; i++) n += block.source[i] == s;
  }
  return n;
}

uint64_t MixtureLoader::next_step() const {
  std::lock_guard<std::mutex> lock(mu_);
  return served_ ? served_step_ + 1 : 0;
}

std::vector<MixtureLoader::Position> MixtureLoader::positions() const {
  uint64_t rows = 0;
  int seq_len = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (served_) rows = (served_step_ + 1) * served_global_batch_, seq_len = served_seq_len_;
  }
  std::vector<Position> out;
  for (size_t s = 0; s < sources_.size(); s++) {
    const Source& src = sources_[s];
    uint64_t windows = seq_len > 0 ? (src.tokens - 1) / uint64_t(seq_len) : 0;
    uint64_t samples = rows ? samples_before(int(s), rows) : 0;
    out.push_back({src.name, src.tokens, windows, samples, windows ? samples / windows : 0});
  }
  return out;
}

// Text, one fact per line, so a checkpoint's trainer state stays readable:
//   herd-mixture-state 1
//   seed <u64> block_rows <u32>
//   served <next_step> <global_batch> <seq_len>
//   source <name> quota <q> shards <n> tokens <t> samples <k> epoch <e>
std::string MixtureLoader::save_state() const {
  std::ostringstream out;
  out << "herd-mixture-state 1\n";
  out << "seed " << o_.seed << " block_rows " << o_.block_rows << "\n";
  {
    std::lock_guard<std::mutex> lock(mu_);
    out << "served " << (served_ ? served_step_ + 1 : 0) << " " << served_global_batch_ << " " << served_seq_len_ << "\n";
  }
  auto pos = positions();
  for (size_t s = 0; s < sources_.size(); s++)
    out << "source " << sources_[s].name << " quota " << sources_[s].quota << " shards " << sources_[s].shards.size()
        << " tokens " << sources_[s].tokens << " samples " << pos[s].samples << " epoch " << pos[s].epoch << "\n";
  return out.str();
}

void MixtureLoader::load_state(const std::string& state) {
  auto bad = [](const std::string& why) { return std::runtime_error("mixture state: " + why); };
  std::istringstream in(state);
  std::string word, name;
  int version = 0;
  if (!(in >> word >> version) || word != "herd-mixture-state") throw bad("not a mixture loader state");
  if (version != 1) throw bad("unsupported version " + std::to_string(version));
  uint64_t seed = 0, next = 0, global_batch = 0;
  uint32_t block_rows = 0;
  int seq_len = 0;
  std::string w1, w2, w3;
  if (!(in >> w1 >> seed >> w2 >> block_rows) || w1 != "seed" || w2 != "block_rows") throw bad("malformed seed line");
  if (seed != o_.seed) throw bad("saved with seed " + std::to_string(seed) + ", this loader has " + std::to_string(o_.seed));
  if (block_rows != o_.block_rows) throw bad("saved with block_rows " + std::to_string(block_rows));
  if (!(in >> w1 >> next >> global_batch >> seq_len) || w1 != "served") throw bad("malformed served line");
  for (size_t s = 0; s < sources_.size(); s++) {
    uint64_t quota = 0, shards = 0, tokens = 0, samples = 0, epoch = 0;
    std::string k1, k2, k3, k4, k5;
    if (!(in >> word >> name >> k1 >> quota >> k2 >> shards >> k3 >> tokens >> k4 >> samples >> k5 >> epoch) ||
        word != "source")
      throw bad("has fewer sources than this loader's " + std::to_string(sources_.size()));
    const Source& src = sources_[s];
    if (name != src.name) throw bad("source " + std::to_string(s) + " was " + name + ", now " + src.name);
    if (quota != src.quota || shards != src.shards.size() || tokens != src.tokens)
      throw bad("source " + name + " changed since the state was saved (quota " + std::to_string(quota) + "→" +
                std::to_string(src.quota) + ", shards " + std::to_string(shards) + "→" +
                std::to_string(src.shards.size()) + ", tokens " + std::to_string(tokens) + "→" +
                std::to_string(src.tokens) + "); resuming would not continue the same stream");
  }
  if (in >> word) throw bad("has more sources than this loader's " + std::to_string(sources_.size()));
  std::lock_guard<std::mutex> lock(mu_);
  served_ = next > 0;
  served_step_ = next > 0 ? next - 1 : 0;
  served_global_batch_ = global_batch;
  served_seq_len_ = seq_len;
}

}  // namespace herd::data
