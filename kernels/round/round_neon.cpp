// f32_round__neon: round_bits() (kernels/cuda/round_body.cuh) on 4 lanes (aarch64 only). The
// last n % 4 elements go through a 4-float stack buffer, so they run the same vector code.
#include <arm_neon.h>

#include <cstring>

#include "kernels/round/round.hpp"

namespace iotnas::kernels {

namespace {

struct ConstsNeon {
  int32x4_t drop, sub_base;
  uint32x4_t drop_mask, inf_threshold;
  explicit ConstsNeon(const RoundParams& p)
      : drop(vdupq_n_s32(int32_t(p.drop_bits))),
        sub_base(vdupq_n_s32(p.sub_shift_base)),
        drop_mask(vdupq_n_u32(p.drop_mask)),
        inf_threshold(vdupq_n_u32(p.inf_threshold)) {}
};

inline uint32x4_t round4(uint32x4_t x, const ConstsNeon& c) {
  const uint32x4_t one = vdupq_n_u32(1);
  const uint32x4_t min_normal = vdupq_n_u32(0x00800000u);
  const uint32x4_t inf = vdupq_n_u32(0x7f800000u);
  const uint32x4_t a = vandq_u32(x, vdupq_n_u32(0x7fffffffu));
  const uint32x4_t em = vandq_u32(a, inf);
  const uint32x4_t base = vsubq_u32(vmaxq_u32(em, min_normal), min_normal);
  const uint32x4_t sig = vsubq_u32(a, base);
  int32x4_t s = vsubq_s32(c.sub_base, vreinterpretq_s32_u32(vshrq_n_u32(base, 23)));
  s = vminq_s32(vmaxq_s32(s, c.drop), vdupq_n_s32(25));  // as the scalar body
  const uint32x4_t low = vsubq_u32(vshlq_u32(one, s), one);
  const uint32x4_t lsb = vandq_u32(vandq_u32(vshlq_u32(sig, vnegq_s32(s)), low), one);
  const uint32x4_t sum = vaddq_u32(vaddq_u32(sig, vshrq_n_u32(low, 1)), lsb);
  const uint32x4_t rs = vbicq_u32(sum, low);
  uint32x4_t r = vandq_u32(vaddq_u32(base, rs), vtstq_u32(rs, rs));
  r = vbslq_u32(vcgeq_u32(r, c.inf_threshold), inf, r);
  const uint32x4_t nan = vbicq_u32(vorrq_u32(a, vdupq_n_u32(0x00400000u)), c.drop_mask);
  r = vbslq_u32(vcgtq_u32(a, inf), nan, r);
  return vorrq_u32(r, vandq_u32(x, vdupq_n_u32(0x80000000u)));
}

inline uint32x4_t load4(const float* p) {
  return vreinterpretq_u32_f32(vld1q_f32(p));
}
inline void store4(float* p, uint32x4_t v) {
  vst1q_f32(p, vreinterpretq_f32_u32(v));
}

}  // namespace

void f32_round__neon(const float* src, float* dst, int64_t n, const RoundParams& p) {
  const ConstsNeon c(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint32x4_t x0 = load4(src + i), x1 = load4(src + i + 4);
    store4(dst + i, round4(x0, c));
    store4(dst + i + 4, round4(x1, c));
  }
  for (; i + 4 <= n; i += 4) store4(dst + i, round4(load4(src + i), c));
  if (i < n) {
    float buf[4] = {};
    std::memcpy(buf, src + i, size_t(n - i) * sizeof(float));
    store4(buf, round4(load4(buf), c));
    std::memcpy(dst + i, buf, size_t(n - i) * sizeof(float));
  }
}

}  // namespace iotnas::kernels
