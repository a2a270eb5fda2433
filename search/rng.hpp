// Deterministic random numbers for search: xoshiro256** seeded through splitmix64.
// Every stochastic routine takes a seed; independent streams come from (seed, stream index), so
// results do not depend on the number of threads or the order in which work is scheduled.
#pragma once

#include <cstdint>

namespace iotnas::search {

// One step of splitmix64 (advances `state`); used to expand seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// A seed for sub-stream `index` of `seed` (e.g. one per window, law or sample).
inline uint64_t derive_seed(uint64_t seed, uint64_t index) {
  uint64_t s = seed ^ 0x6a09e667f3bcc909ull;
  const uint64_t a = splitmix64(s);
  s = a ^ (index * 0xd1b54a32d192ed03ull + 0x3c6ef372fe94f82bull);
  return splitmix64(s);
}

class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0) {
    uint64_t s = derive_seed(seed, stream);
    for (auto& w : s_) w = splitmix64(s);
  }

  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n), n >= 1, without modulo bias (multiply-shift with exact rejection).
  uint32_t below(uint32_t n) {
    uint64_t m = uint64_t(uint32_t(next() >> 32)) * n;
    uint32_t low = uint32_t(m);
    if (low < n) {
      const uint32_t threshold = uint32_t(-n) % n;
      while (low < threshold) {
        m = uint64_t(uint32_t(next() >> 32)) * n;
        low = uint32_t(m);
      }
    }
    return uint32_t(m >> 32);
  }

  // Uniform integer in [lo, hi], lo <= hi.
  int between(int lo, int hi) { return lo + int(below(uint32_t(hi - lo) + 1u)); }

  // Uniform in [0, 1).
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace iotnas::search
