// Where training batches come from. The trainer asks for the tokens of step `step` for its
// data-parallel rank; a source answers deterministically from (seed, step, rank), so resuming
// from a checkpoint needs nothing but the step and the source's saved state.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

namespace herd {

class TokenSource {
 public:
  virtual ~TokenSource() = default;

  // Fills out[batch * (seq_len + 1)] with `batch` rows of seq_len + 1 consecutive token ids:
  // inputs are row[0..seq_len), targets row[1..seq_len]. Deterministic in (seed, step, rank).
  virtual void batch(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out) = 0;

  // Instruction examples: rows pack whole examples, and only some targets are learned.
  // A source that says so answers examples() as well as batch().
  virtual bool packs_examples() const { return false; }

  // Like batch(), and also, per input token (batch · seq_len each): learn[n] = 1 where the
  // row's next token is a target to learn (0: a prompt token, padding, an example's end), and
  // positions[n], the token's position in its example (0 where an example starts). Attention
  // and rotary positions stay inside each example (Model::forward).
  virtual void examples(uint64_t step, int rank, int world, int batch, int seq_len, int32_t* out,
                        uint8_t* learn, int32_t* positions) {
    (void)step, (void)rank, (void)world, (void)batch, (void)seq_len, (void)out, (void)learn,
        (void)positions;
    throw std::logic_error("this token source has no instruction examples");
  }

  // Opaque, versioned state (epochs seen per source, cursors) stored in the checkpoint's
  // trainer state and handed back on resume.
  virtual std::string save_state() const = 0;
  virtual void load_state(const std::string& state) = 0;

  // Largest token id + 1 the source can produce; the model's vocabulary must cover it.
  virtual int32_t vocab_size() const = 0;
};

}  // namespace herd
