// A small, portable random number generator (SplitMix64) so that initial weights depend only
// on the seed, never on the C++ library's distributions, which differ between platforms.
#pragma once
#include <cmath>
#include <cstdint>

namespace herd {

struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}

  uint64_t next_u64() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1): 53 random bits, never exactly 0 (Box-Muller takes its log).
  double uniform() { return (double(next_u64() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  // Standard normal by Box-Muller (one value per call, the second is dropped for simplicity).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

// Mixes a seed with a counter into an independent stream's seed (for per-step data sampling).
inline uint64_t mix_seed(uint64_t seed, uint64_t counter) {
  Rng r(seed ^ (counter * 0xD1B54A32D192ED03ull));
  r.next_u64();
  return r.next_u64();
}

}  // namespace herd
