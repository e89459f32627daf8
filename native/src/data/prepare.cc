#include "data/prepare.h"

#include <omp.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "data/parallel.h"
#include "data/shard.h"

namespace herd::data {

namespace {

const char* const kStages[] = {"input",          "dedup_docs",     "dedup_lines",
                               "max_line_chars", "max_bad_chars",  "line_min_words",
                               "terminal_punct", "min_words"};
constexpr int kStageCount = sizeof kStages / sizeof kStages[0];

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

struct Line {
  const char* begin;
  const char* end;
  bool keep = true;
};

// One document on its way through the stages.
struct Doc {
  std::string text;
  std::vector<Line> lines;
  bool trailing_newline = false;
  bool alive = true;
  uint64_t hash = 0;
  std::vector<uint64_t> line_hashes;
  uint64_t lines_left[kStageCount] = {}, bytes_left[kStageCount] = {};
  bool alive_after[kStageCount] = {};
  std::vector<int32_t> tokens;

  void split() {
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
      const char* nl = static_cast<const char*>(memchr(p, '\n', size_t(end - p)));
      if (!nl) {
        lines.push_back({p, end});
        break;
      }
      lines.push_back({p, nl});
      p = nl + 1;
    }
    trailing_newline = !text.empty() && text.back() == '\n';
  }

  // What survives of the text: kept lines joined by newlines.
  uint64_t kept_bytes(uint64_t* kept_lines) const {
    uint64_t bytes = 0, n = 0;
    for (const auto& l : lines)
      if (l.keep) bytes += uint64_t(l.end - l.begin), n++;
    *kept_lines = n;
    if (n > 0) bytes += (n - 1) + (trailing_newline ? 1 : 0);
    return bytes;
  }

  void record(int stage) {
    alive_after[stage] = alive;
    if (alive) bytes_left[stage] = kept_bytes(&lines_left[stage]);
  }

  std::string kept_text() const {
    std::string out;
    bool first = true;
    for (const auto& l : lines) {
      if (!l.keep) continue;
      if (!first) out += '\n';
      out.append(l.begin, l.end);
      first = false;
    }
    if (!first && trailing_newline) out += '\n';
    return out;
  }
};

}  // namespace

uint64_t count_words(const char* begin, const char* end) {
  uint64_t words = 0;
  bool in_word = false;
  for (const char* p = begin; p < end; p++) {
    bool space = is_space(*p);
    if (!space && !in_word) words++;
    in_word = !space;
  }
  return words;
}

bool is_blank(const char* begin, const char* end) {
  for (const char* p = begin; p < end; p++)
    if (!is_space(*p)) return false;
  return true;
}

bool ends_with_terminal_punct(const char* begin, const char* end) {
  while (end > begin && is_space(end[-1])) end--;
  if (end == begin) return false;
  char c = end[-1];
  return c == '.' || c == '!' || c == '?' || c == '"';
}

void count_chars(const char* begin, const char* end, uint64_t* chars, uint64_t* bad) {
  auto* p = reinterpret_cast<const uint8_t*>(begin);
  auto* e = reinterpret_cast<const uint8_t*>(end);
  uint64_t n = 0, b = 0;
  while (p < e) {
    uint32_t c = *p;
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && p + len <= e;
    for (int i = 1; valid && i < len; i++) valid = (p[i] & 0xC0) == 0x80;
    if (!valid) {  // an invalid byte counts as one bad character
      n++, b++, p++;
      continue;
    }
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int i = 1; i < len; i++) cp = (cp << 6) | (p[i] & 0x3F);
    bool control = (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || (cp >= 0x7F && cp <= 0x9F);
    n++;
    if (control || cp == 0xFFFD) b++;
    p += len;
  }
  *chars = n;
  *bad = b;
}

static uint64_t count_code_points(const char* begin, const char* end) {
  uint64_t n = 0;
  for (const char* p = begin; p < end; p++) n += (uint8_t(*p) & 0xC0) != 0x80;
  return n;
}

Preparer::Preparer(PrepareOptions options) : o_(std::move(options)) {
  tok_ = std::make_unique<Tokenizer>(o_.tokenizer_path);
  stats_.vocab_size = tok_->vocab_size();
  for (const char* name : kStages) stats_.stages.push_back({name});
  if (o_.shard_tokens == 0) throw std::invalid_argument("prepare: shard size must be positive");
  if (o_.threads <= 0) o_.threads = omp_get_max_threads();
}

void Preparer::add(std::vector<std::string> texts) {
  if (finished_) throw std::logic_error("prepare: add() after finish()");
  const int64_t n = int64_t(texts.size());
  std::vector<Doc> docs(texts.size());
  for (int64_t i = 0; i < n; i++) docs[i].text = std::move(texts[i]);

  // A: split and hash, in parallel.
  parallel_for(n, o_.threads, 8, [&](int64_t i) {
    Doc& d = docs[i];
    d.split();
    d.record(0);
    if (o_.dedup_docs) d.hash = fnv1a64(d.text.data(), d.text.size());
    if (o_.dedup_lines)
      for (const auto& l : d.lines) d.line_hashes.push_back(fnv1a64(l.begin, size_t(l.end - l.begin)));
  });

  // B: deduplicate against everything seen so far, in input order.
  for (auto& d : docs) {
    if (o_.dedup_docs && !seen_docs_.insert(d.hash).second) d.alive = false;
    d.record(1);
    if (d.alive && o_.dedup_lines)
      for (size_t j = 0; j < d.lines.size(); j++) {
        Line& l = d.lines[j];
        if (!is_blank(l.begin, l.end) && !seen_lines_.insert(d.line_hashes[j]).second) l.keep = false;
      }
    d.record(2);
  }

  // C: filters and tokenization, in parallel.
  parallel_for(n, o_.threads, 1, [&](int64_t i) {
    Doc& d = docs[i];
    if (d.alive && o_.max_line_chars > 0)
      for (const auto& l : d.lines)
        if (l.keep && count_code_points(l.begin, l.end) > o_.max_line_chars) d.alive = false;
    d.record(3);
    if (d.alive && o_.max_bad_chars > 0) {
      uint64_t chars = 0, bad = 0;
      for (const auto& l : d.lines)
        if (l.keep) {
          uint64_t c, b;
          count_chars(l.begin, l.end, &c, &b);
          chars += c, bad += b;
        }
      if (chars > 0 && double(bad) > o_.max_bad_chars * double(chars)) d.alive = false;
    }
    d.record(4);
    if (d.alive && o_.line_min_words > 0)
      for (auto& l : d.lines)
        if (l.keep && !is_blank(l.begin, l.end) && count_words(l.begin, l.end) < o_.line_min_words)
          l.keep = false;
    d.record(5);
    if (d.alive && o_.terminal_punct)
      for (auto& l : d.lines)
        if (l.keep && !is_blank(l.begin, l.end) && !ends_with_terminal_punct(l.begin, l.end))
          l.keep = false;
    d.record(6);
    if (d.alive) {
      uint64_t words = 0;
      for (const auto& l : d.lines)
        if (l.keep) words += count_words(l.begin, l.end);
      if (words == 0 || words < o_.min_words) d.alive = false;
    }
    d.record(7);
    if (d.alive) d.tokens = tok_->encode(d.kept_text(), o_.bos, o_.eos);
  });

  // D: counts and tokens, in input order.
  for (auto& d : docs) {
    for (int s = 0; s < kStageCount; s++)
      if (d.alive_after[s]) {
        stats_.stages[s].docs++;
        stats_.stages[s].lines += d.lines_left[s];
        stats_.stages[s].bytes += d.bytes_left[s];
      }
    if (!d.alive) continue;
    shard_tokens_.insert(shard_tokens_.end(), d.tokens.begin(), d.tokens.end());
    shard_docs_.push_back(shard_tokens_.size());
    stats_.tokens += d.tokens.size();
    if (shard_tokens_.size() >= o_.shard_tokens) flush_shard();
  }
}

void Preparer::flush_shard() {
  if (shard_docs_.size() <= 1) return;
  char name[32];
  std::snprintf(name, sizeof name, "shard-%06zu.bin", stats_.shards.size());
  write_shard(o_.out_dir + "/" + name, shard_tokens_, shard_docs_, uint32_t(tok_->vocab_size()));
  stats_.shards.push_back({name, shard_tokens_.size(), shard_docs_.size() - 1});
  shard_tokens_.clear();
  shard_docs_.assign(1, 0);
}

PrepareStats Preparer::finish() {
  if (!finished_) flush_shard();
  finished_ = true;
  return stats_;
}

}  // namespace herd::data
