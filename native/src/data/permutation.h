// Counter-based randomness for the data loaders: every draw is a pure function of its key,
// so any rank can compute any step's rows with no sequential state (docs/data.md).
#pragma once
#include <cstdint>

namespace herd::data {

// splitmix64 (Steele, Lea, Flood 2014): a strong 64-bit mix, used as a counter-based generator:
// the n-th number of stream `key` is splitmix64(key + n·golden).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint64_t key_of(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

// A keyed bijection of [0, n): a 4-round balanced Feistel network on the smallest even
// power of two ≥ n, with cycle walking for values that land outside [0, n).
inline uint64_t permute(uint64_t x, uint64_t n, uint64_t key) {
  if (n <= 1) return 0;
  int bits = 64 - __builtin_clzll(n - 1);
  if (bits < 2) bits = 2;
  if (bits & 1) bits++;
  const int half = bits / 2;
  const uint64_t mask = (uint64_t(1) << half) - 1;
  do {
    uint64_t l = x >> half, r = x & mask;
    for (uint64_t round = 0; round < 4; round++) {
      uint64_t f = splitmix64(r ^ key ^ (round * 0xd1b54a32d192ed03ull)) & mask;
      uint64_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half) | r;
  } while (x >= n);
  return x;
}

}  // namespace herd::data
