#include "data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "data/fsutil.h"

// Exported by libsentencepiece but absent from its public headers: the trainer's INFO log
// (a line per merge) is noise unless asked for.
namespace sentencepiece::logging {
void SetMinLogLevel(int level);
}

namespace herd::data {

Tokenizer::Tokenizer(const std::string& path)
    : path_(path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  // Read the bytes ourselves so "missing file" and "not a SentencePiece model" are told apart.
  std::string bytes = read_file(path);
  if (bytes.empty()) throw std::runtime_error("tokenizer " + path + ": file is empty");
  auto status = sp_->LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw std::runtime_error("tokenizer " + path +
                             ": not a valid SentencePiece model: " + status.ToString());
  if (sp_->GetPieceSize() <= 0)
    throw std::runtime_error("tokenizer " + path + ": model has no pieces");
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error("tokenizer " + path_ + ": encode: " + status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (bos && sp_->bos_id() >= 0) out.push_back(sp_->bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  if (eos && sp_->eos_id() >= 0) out.push_back(sp_->eos_id());
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  const int n = sp_->GetPieceSize();
  for (size_t i = 0; i < ids.size(); i++)
    if (ids[i] < 0 || ids[i] >= n)
      throw std::runtime_error("decode: id " + std::to_string(ids[i]) + " at index " +
                               std::to_string(i) + " is outside the vocabulary [0, " +
                               std::to_string(n) + ")");
  std::string text;
  auto status = sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text);
  if (!status.ok()) throw std::runtime_error("tokenizer " + path_ + ": decode: " + status.ToString());
  return text;
}

int32_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }
int32_t Tokenizer::unk_id() const { return sp_->unk_id(); }
bool Tokenizer::is_byte(int32_t id) const {
  return id >= 0 && id < vocab_size() && sp_->IsByte(id);
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::runtime_error("piece: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(vocab_size()) + ")");
  return sp_->IdToPiece(id);
}

int32_t Tokenizer::piece_id(const std::string& piece) const { return sp_->PieceToId(piece); }

void train_tokenizer(const TrainOptions& o) {
  if (o.inputs.empty()) throw std::runtime_error("tokenizer train: no input files");
  if (o.model_path.empty()) throw std::runtime_error("tokenizer train: no output path");
  if (o.vocab_size < 260)
    throw std::runtime_error("tokenizer train: vocab size " + std::to_string(o.vocab_size) +
                             " is too small: byte fallback alone needs 256 pieces + 3 specials");
  std::string inputs;
  for (const auto& f : o.inputs) inputs += (inputs.empty() ? "" : ",") + f;
  int threads = o.num_threads > 0 ? o.num_threads : int(std::thread::hardware_concurrency());
  // The trainer spec of LLaMA's own tokenizer.model, field by field.
  std::unordered_map<std::string, std::string> spec = {
      {"input", inputs},
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"character_coverage", std::to_string(o.character_coverage)},
      {"input_sentence_size", std::to_string(o.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"max_sentence_length", std::to_string(o.max_sentence_length)},
      {"max_sentencepiece_length", "16"},
      {"split_by_unicode_script", "true"},
      {"split_by_whitespace", "true"},
      {"split_by_number", "true"},
      {"split_digits", "true"},
      {"byte_fallback", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"vocabulary_output_piece_score", "true"},
      {"hard_vocab_limit", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "true"},
      {"remove_extra_whitespaces", "false"},
      {"num_threads", std::to_string(threads)},
  };
  if (o.seed != 0) spec["random_seed"] = std::to_string(o.seed);
  sentencepiece::logging::SetMinLogLevel(o.verbose ? 0 : 1);
  std::string model;
  auto status = sentencepiece::SentencePieceTrainer::Train(spec, nullptr, &model);
  if (!status.ok()) throw std::runtime_error("tokenizer train: " + status.ToString());
  write_file_atomic(o.model_path, model);
}

}  // namespace herd::data
