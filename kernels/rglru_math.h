// RG-LRU per-element math shared by the CPU (C++/OpenMP) and CUDA kernels.
//
// Shapes: b batch, t time, d channels; tensors are (b, t, d) contiguous, the state is fp32 (b, d).
// One step, with sp = softplus(a_param[d]) precomputed per channel and c = 8:
//
//   r = sigmoid(gate_a)    log_a = -c * r * sp    a = exp(log_a)
//   i = sigmoid(gate_x)    m = sqrt(1 - a^2) = sqrt(-E (2 + E)),  E = expm1(log_a)
//   h_t = a * h_{t-1} + i * m * x          (at a reset: h_t = i * x)
//
// Backward of one step, given G = dL/dh_t (the upstream dy_t plus the carry a_{t+1} * G_{t+1}):
//
//   dx = G * i * m                          d_gate_x = G * x * m * i (1 - i)
//   dv = G * x * i / max(2 m, 1 / 1000)     (d sqrt(v) / dv = 1 / (2 sqrt v), bounded as in RecurrentGemma)
//   dlog_a = G * h_{t-1} * a - 2 a^2 dv     (d (1 - a^2) / dlog_a = -2 a^2)
//   d_gate_a = dlog_a * (-c sp) * r (1 - r) d_sp += dlog_a * (-c r)     carry: a * G
//
// At a reset a = 0 and m is replaced by 1, so d_gate_a = 0 and nothing flows to h_{t-1}.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define RGLRU_HD __host__ __device__ __forceinline__
#else
#define RGLRU_HD inline __attribute__((always_inline))
#endif

namespace rglru {

constexpr float kC = 8.0f;
constexpr float kMinTwoSqrt = 1.0f / 1000.0f;  // 1 / MAX_SQRT_GRADIENT: the bound on d sqrt(v) / dv
constexpr int kCheckpoint = 16;                // the forward saves the fp32 state every kCheckpoint steps

#if defined(__CUDA_ARCH__)
RGLRU_HD float exp_f(float x) { return expf(x); }
RGLRU_HD float expm1_f(float x) { return expm1f(x); }
RGLRU_HD void exp_expm1_f(float x, float& e, float& em1) { e = expf(x), em1 = expm1f(x); }
RGLRU_HD float sqrt_f(float x) { return sqrtf(x); }
#else
// Branch-free exp / expm1 so that the CPU loops vectorise (libm calls would not). Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2 / 2, then expm1(r) by its Taylor series to r^7 (truncation < 2e-8 relative),
// and expm1(x) = 2^n expm1(r) + (2^n - 1), which keeps full relative precision near 0 (needed for
// 1 - a^2 as a -> 1). Max error ~2 ulp over the clamped range [-87, 88].
RGLRU_HD float bits_to_float(int32_t b) { float f; std::memcpy(&f, &b, 4); return f; }

RGLRU_HD void exp_reduce(float x, float& em_r, float& scale) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;    // ln2 split hi / lo
  em_r = r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f + r * (8.33333377e-3f +
             r * (1.38888892e-3f + r * 1.98412701e-4f))))));
  scale = bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}
RGLRU_HD float exp_f(float x) { float em, s; exp_reduce(x, em, s); return s + s * em; }
RGLRU_HD float expm1_f(float x) { float em, s; exp_reduce(x, em, s); return s * em + (s - 1.0f); }
RGLRU_HD void exp_expm1_f(float x, float& e, float& em1) {  // both from one reduction
  float em, s;
  exp_reduce(x, em, s);
  e = s + s * em, em1 = s * em + (s - 1.0f);
}
RGLRU_HD float sqrt_f(float x) { return __builtin_sqrtf(x); }
#endif

RGLRU_HD float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

// The gate values of one element that both passes need.
struct Gates {
  float a;      // decay (0 at a reset)
  float r;      // sigmoid(gate_a)
  float i;      // sigmoid(gate_x)
  float m;      // sqrt(1 - a^2), or 1 at a reset
};

RGLRU_HD Gates gates(float gate_a, float gate_x, float sp, bool reset) {
  Gates g;
  g.r = sigmoid_f(gate_a);
  g.i = sigmoid_f(gate_x);
  // a = exp(log_a) and 1 - a^2 = -E (2 + E) with E = expm1(log_a): accurate near a = 1, one reduction on the CPU
  float a, e;
  exp_expm1_f(-kC * g.r * sp, a, e);
  g.a = reset ? 0.0f : a;
  g.m = reset ? 1.0f : sqrt_f(-e * (2.0f + e));
  return g;
}

struct StepGrads {
  float dx, d_gate_a, d_gate_x, d_sp;
};

// Gradients of one step; `G` is dL/dh_t in full, `h_prev` = h_{t-1}. The carry to h_{t-1} is g.a * G.
RGLRU_HD StepGrads step_backward(const Gates& g, float G, float x, float h_prev, float sp, bool reset) {
  StepGrads out;
  const float d_scale = G * x;
  out.dx = G * g.i * g.m;
  out.d_gate_x = d_scale * g.m * g.i * (1.0f - g.i);
  const float two_m = 2.0f * g.m;
  const float dv = d_scale * g.i / (two_m > kMinTwoSqrt ? two_m : kMinTwoSqrt);
  const float dlog_a = reset ? 0.0f : G * h_prev * g.a - 2.0f * g.a * g.a * dv;
  out.d_gate_a = dlog_a * (-kC * sp) * g.r * (1.0f - g.r);
  out.d_sp = dlog_a * (-kC * g.r);
  return out;
}

// softplus with torch's default threshold (linear above 20) and its derivative, once per channel.
RGLRU_HD float softplus_f(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
RGLRU_HD float softplus_grad_f(float x) { return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x)); }

}  // namespace rglru
