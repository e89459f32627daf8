// SentencePiece tokenizer: load any .model file, encode/decode, and train a BPE model with
// LLaMA's settings. A thin layer over libsentencepiece that turns its status codes into
// exceptions naming the file, so bad input reaches the user as a message, never a crash.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace herd::data {

class Tokenizer {
 public:
  // Reads and parses the model file; throws std::runtime_error naming `path` on any problem.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();

  // Thread-safe (const): many threads may encode with one tokenizer at once.
  std::vector<int32_t> encode(std::string_view text, bool bos, bool eos) const;
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t unk_id() const;
  std::string piece(int32_t id) const;            // throws on an id outside the vocabulary
  int32_t piece_id(const std::string& piece) const;  // unk_id() when absent
  bool is_byte(int32_t id) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

// LLaMA's tokenizer recipe (Touvron et al. 2023, §2.1; the trainer spec stored in LLaMA's
// tokenizer.model): BPE, digits split into single characters, unknown UTF-8 falls back to
// byte pieces, no normalisation, whitespace kept as is.
struct TrainOptions {
  std::vector<std::string> inputs;  // plain-text files, one sentence per line
  std::string model_path;           // where the .model file goes (written atomically)
  int vocab_size = 32000;
  double character_coverage = 0.99995;
  int64_t input_sentence_size = 200000000;  // sentences sampled from the input, at most
  int max_sentence_length = 4192;           // bytes; longer lines are skipped
  int num_threads = 0;                      // 0: every core
  uint32_t seed = 0;                        // 0: SentencePiece's default
  bool verbose = false;                     // SentencePiece's per-merge log on stderr
};
void train_tokenizer(const TrainOptions& options);

}  // namespace herd::data
