// Random numbers, in one place. Every stochastic routine of iotnas takes an explicit seed and gets
// the same bits on every platform and compiler: <random>'s engines are specified bit for bit by
// the standard, but its distributions are not (libstdc++ and libc++ differ), so no distribution
// object is used; the conversions below are written out.
//
//   Rng        xoshiro256** seeded through splitmix64; sub-streams from (seed, index). Search
//              (GA, sampling, clustering) and anything new.
//   StreamRng  a splitmix64 counter keyed by stream_key(seed, a, b): one cheap stream per
//              (epoch, position, class, ...). Datasets (shuffling, augmentation, splits).
//   std::mt19937_64 with uniform_float / uniform_unit: the weight initialiser's and the latency
//              models' generator; the conversions reproduce libstdc++'s uniform_real_distribution
//              bit for bit, so weights drawn before these helpers existed are drawn again
//              unchanged (tests/engine/rng_test.cpp compares them).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

namespace iotnas {

// One step of splitmix64 (advances `state`); used to expand seeds.
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// splitmix64's output function applied to x + golden ratio (a stateless mix).
inline uint64_t mix64(uint64_t x) {
  uint64_t s = x;
  return splitmix64(s);
}

// A seed for sub-stream `index` of `seed` (e.g. one per window, law or sample).
inline uint64_t derive_seed(uint64_t seed, uint64_t index) {
  uint64_t s = seed ^ 0x6a09e667f3bcc909ull;
  const uint64_t a = splitmix64(s);
  s = a ^ (index * 0xd1b54a32d192ed03ull + 0x3c6ef372fe94f82bull);
  return splitmix64(s);
}

// A stream key from a seed and two coordinates (epoch, position, class, ...), for StreamRng.
inline uint64_t stream_key(uint64_t seed, uint64_t a, uint64_t b) {
  return mix64(mix64(mix64(seed) ^ a) ^ b);
}

// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
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

  // Standard normal (Box-Muller; one draw of the pair).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// A splitmix64 counter: one independent stream per stream_key.
class StreamRng {
 public:
  explicit StreamRng(uint64_t key) : state_(key) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in [0, n), n >= 1, without modulo bias (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = (unsigned __int128)next() * n;
    if (uint64_t(m) < n) {
      const uint64_t threshold = (0 - n) % n;
      while (uint64_t(m) < threshold) m = (unsigned __int128)next() * n;
    }
    return uint64_t(m >> 64);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)

 private:
  uint64_t state_;
};

// Uniform in [lo, hi) from one 64-bit draw, as libstdc++'s uniform_real_distribution<float>
// computes it: the draw rounded to float, divided by 2^64 (1 itself becomes the float below 1),
// then scaled in float.
inline float uniform_float(std::mt19937_64& g, float lo, float hi) {
  float u = float(g()) / 0x1.0p64f;
  if (u >= 1.f) u = std::nextafter(1.f, 0.f);
  return u * (hi - lo) + lo;
}

// Uniform in [0, 1) from one 64-bit draw, as libstdc++'s uniform_real_distribution<double>(0, 1).
inline double uniform_unit(std::mt19937_64& g) {
  double u = double(g()) / 0x1.0p64;
  if (u >= 1.0) u = std::nextafter(1.0, 0.0);
  return u;
}

// Fisher-Yates shuffle with `below(n)` draws from any of the generators above.
template <typename Vec, typename Gen>
void shuffle(Vec& v, Gen& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace iotnas
