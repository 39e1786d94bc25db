// RG-LRU scan on the CPU: parallel over (batch, block of channels), sequential over time, the inner loop over
// a block of contiguous channels vectorised. One pass over memory in the forward (read x, gate_a, gate_x;
// write y); the backward recomputes the gates from the inputs and the fp32 state from checkpoints saved
// every kCheckpoint steps, so nothing (b, t, d)-sized is stored besides the inputs. See kernels/README.md.
//
// Inputs fp32 or bf16 (the state and all arithmetic are fp32). Built by workbench/ops/build.py.
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <sys/mman.h>

#include <algorithm>
#include <optional>
#include <type_traits>
#include <vector>

#include "rglru_math.h"

namespace rglru {
namespace {

// bf16 is handled as its bits so that conversions are plain integer ops the vectoriser understands.
RGLRU_HD float to_float(float v) { return v; }
RGLRU_HD float to_float(uint16_t v) { return bits_to_float(static_cast<int32_t>(static_cast<uint32_t>(v) << 16)); }
RGLRU_HD void store(float f, float& out) { out = f; }
RGLRU_HD void store(float f, uint16_t& out) {  // round to nearest even, as c10::BFloat16
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1u);
  out = f != f ? uint16_t(0x7fc0) : static_cast<uint16_t>(b >> 16);
}

// Calls body(std::true_type) or body(std::false_type): the reset flag is uniform across a row, and a
// compile-time flag keeps the channel loop free of branches (a runtime one blocks vectorisation).
template <typename F>
RGLRU_HD void with_reset(bool reset, const F& body) {
  if (reset) body(std::true_type{}); else body(std::false_type{});
}

struct Sizes {
  int64_t T, D, n_ckpt;
};

template <typename S>
RGLRU_HD void forward_block(const S* __restrict__ x, const S* __restrict__ gate_a, const S* __restrict__ gate_x,
                            const bool* __restrict__ resets, const float* __restrict__ sp,
                            const float* __restrict__ h0, S* __restrict__ y, float* __restrict__ ckpt,
                            float* __restrict__ h_last, Sizes n, int64_t b, int64_t d0, int64_t w) {
  std::vector<float> state(w);
  float* __restrict__ h = state.data();
  for (int64_t j = 0; j < w; ++j) h[j] = h0 ? h0[b * n.D + d0 + j] : 0.0f;
  for (int64_t t = 0; t < n.T; ++t) {
    if (t % kCheckpoint == 0) std::copy(h, h + w, ckpt + (b * n.n_ckpt + t / kCheckpoint) * n.D + d0);
    const int64_t off = (b * n.T + t) * n.D + d0;
    with_reset(resets && resets[b * n.T + t], [&](auto reset) {
#pragma omp simd
      for (int64_t j = 0; j < w; ++j) {
        const Gates g = gates(to_float(gate_a[off + j]), to_float(gate_x[off + j]), sp[d0 + j], reset);
        h[j] = g.a * h[j] + g.i * g.m * to_float(x[off + j]);
        store(h[j], y[off + j]);
      }
    });
  }
  std::copy(h, h + w, h_last + b * n.D + d0);
}

template <typename S>
RGLRU_HD void backward_block(const S* __restrict__ dy, const float* __restrict__ dh_last, const S* __restrict__ x,
                             const S* __restrict__ gate_a, const S* __restrict__ gate_x,
                             const bool* __restrict__ resets, const float* __restrict__ sp,
                             const float* __restrict__ ckpt, S* __restrict__ dx, S* __restrict__ d_gate_a,
                             S* __restrict__ d_gate_x, float* __restrict__ d_sp, float* __restrict__ dh0, Sizes n,
                             int64_t b, int64_t d0, int64_t w) {
  // Per checkpoint interval a forward recompute fills h_prev, a, r, i, m (kCheckpoint rows of w, hot in
  // L2), then the reverse sweep reads them: the gates are evaluated twice, never stored in memory.
  std::vector<float> scratch((5 * kCheckpoint + 3) * w);
  float* __restrict__ h_prev = scratch.data();
  float* __restrict__ a = h_prev + kCheckpoint * w;
  float* __restrict__ r = a + kCheckpoint * w;
  float* __restrict__ i = r + kCheckpoint * w;
  float* __restrict__ m = i + kCheckpoint * w;
  float* __restrict__ carry = m + kCheckpoint * w;
  float* __restrict__ h = carry + w;
  float* __restrict__ dsp = h + w;
  for (int64_t j = 0; j < w; ++j) {
    carry[j] = dh_last[b * n.D + d0 + j];
    dsp[j] = 0.0f;
  }
  for (int64_t k = n.n_ckpt - 1; k >= 0; --k) {
    const int64_t t0 = k * kCheckpoint, steps = std::min<int64_t>(kCheckpoint, n.T - t0);
    std::copy_n(ckpt + (b * n.n_ckpt + k) * n.D + d0, w, h);
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t off = (b * n.T + t0 + s) * n.D + d0;
      with_reset(resets && resets[b * n.T + t0 + s], [&](auto reset) {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) {
          const Gates g = gates(to_float(gate_a[off + j]), to_float(gate_x[off + j]), sp[d0 + j], reset);
          const int64_t q = s * w + j;
          h_prev[q] = h[j], a[q] = g.a, r[q] = g.r, i[q] = g.i, m[q] = g.m;
          h[j] = g.a * h[j] + g.i * g.m * to_float(x[off + j]);
        }
      });
    }
    for (int64_t s = steps - 1; s >= 0; --s) {
      const int64_t off = (b * n.T + t0 + s) * n.D + d0;
      with_reset(resets && resets[b * n.T + t0 + s], [&](auto reset) {
#pragma omp simd
        for (int64_t j = 0; j < w; ++j) {
          const int64_t q = s * w + j;
          const Gates g{a[q], r[q], i[q], m[q]};
          const float G = carry[j] + to_float(dy[off + j]);
          const StepGrads sg = step_backward(g, G, to_float(x[off + j]), h_prev[q], sp[d0 + j], reset);
          store(sg.dx, dx[off + j]);
          store(sg.d_gate_a, d_gate_a[off + j]);
          store(sg.d_gate_x, d_gate_x[off + j]);
          dsp[j] += sg.d_sp;
          carry[j] = g.a * G;
        }
      });
    }
  }
  std::copy(carry, carry + w, dh0 + b * n.D + d0);
  std::copy(dsp, dsp + w, d_sp + b * n.D + d0);
}

// Compile the hot loops for AVX-512 and AVX2 as well as the baseline and pick at load time (no -march=native).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RGLRU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RGLRU_CLONES
#endif

#define RGLRU_INSTANTIATE(S, suffix)                                                                          \
  RGLRU_CLONES void forward_block_##suffix(const S* x, const S* ga, const S* gx, const bool* rs,              \
                                           const float* sp, const float* h0, S* y, float* ckpt, float* hl,    \
                                           Sizes n, int64_t b, int64_t d0, int64_t w) {                       \
    forward_block<S>(x, ga, gx, rs, sp, h0, y, ckpt, hl, n, b, d0, w);                                        \
  }                                                                                                           \
  RGLRU_CLONES void backward_block_##suffix(const S* dy, const float* dhl, const S* x, const S* ga,           \
                                            const S* gx, const bool* rs, const float* sp, const float* ckpt,  \
                                            S* dx, S* dga, S* dgx, float* dsp, float* dh0, Sizes n,           \
                                            int64_t b, int64_t d0, int64_t w) {                               \
    backward_block<S>(dy, dhl, x, ga, gx, rs, sp, ckpt, dx, dga, dgx, dsp, dh0, n, b, d0, w);                 \
  }
RGLRU_INSTANTIATE(float, f32)
RGLRU_INSTANTIATE(uint16_t, bf16)

void forward_dispatch(const float* x, const float* ga, const float* gx, const bool* rs, const float* sp,
                      const float* h0, float* y, float* ckpt, float* hl, Sizes n, int64_t b, int64_t d0,
                      int64_t w) {
  forward_block_f32(x, ga, gx, rs, sp, h0, y, ckpt, hl, n, b, d0, w);
}
void forward_dispatch(const uint16_t* x, const uint16_t* ga, const uint16_t* gx, const bool* rs, const float* sp,
                      const float* h0, uint16_t* y, float* ckpt, float* hl, Sizes n, int64_t b, int64_t d0,
                      int64_t w) {
  forward_block_bf16(x, ga, gx, rs, sp, h0, y, ckpt, hl, n, b, d0, w);
}
void backward_dispatch(const float* dy, const float* dhl, const float* x, const float* ga, const float* gx,
                       const bool* rs, const float* sp, const float* ckpt, float* dx, float* dga, float* dgx,
                       float* dsp, float* dh0, Sizes n, int64_t b, int64_t d0, int64_t w) {
  backward_block_f32(dy, dhl, x, ga, gx, rs, sp, ckpt, dx, dga, dgx, dsp, dh0, n, b, d0, w);
}
void backward_dispatch(const uint16_t* dy, const float* dhl, const uint16_t* x, const uint16_t* ga,
                       const uint16_t* gx, const bool* rs, const float* sp, const float* ckpt, uint16_t* dx,
                       uint16_t* dga, uint16_t* dgx, float* dsp, float* dh0, Sizes n, int64_t b, int64_t d0,
                       int64_t w) {
  backward_block_bf16(dy, dhl, x, ga, gx, rs, sp, ckpt, dx, dga, dgx, dsp, dh0, n, b, d0, w);
}

// Work items are (batch, channel range) pairs; each runs its whole time range. Whole rows when the batch
// alone keeps every thread busy: then each item streams through one contiguous (t, d) plane, which the
// hardware prefetchers follow (narrow strided blocks ran ~3x slower, memory-latency bound). Otherwise
// rows are split into as many ranges (multiples of 16 channels, >= 64) as it takes to feed the threads.
template <typename F>
void for_each_block(int64_t B, int64_t T, int64_t D, const F& body) {
  const int64_t threads = at::get_num_threads();
  const int64_t splits = std::max<int64_t>(1, std::min((threads + B - 1) / B, D / 64));
  const int64_t width = ((D + splits - 1) / splits + 15) / 16 * 16;
  const int64_t blocks = (D + width - 1) / width;
  // small problems run inline: waking a thread costs more than ~64k elements of work (far more on a busy machine)
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, T * width));
  at::parallel_for(0, B * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, d0 = (item % blocks) * width;
      body(b, d0, std::min(width, D - d0));
    }
  });
}

// Outputs are fresh allocations, and first-touch page faults on 4 kB pages cost as much as the kernel's
// own writes (measured: the forward ran 1.7x faster on huge pages). Torch's CPU allocator asks for
// transparent huge pages only under THP_MEM_ALLOC_ENABLE=1, so ask for them here, for large outputs only.
at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr()), end = begin + t.nbytes();
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1), last = end & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);  // a hint: failure is fine
#endif
  return t;
}

template <typename S>
const S* ptr(const at::Tensor& t) { return reinterpret_cast<const S*>(t.data_ptr()); }
template <typename S>
S* mut_ptr(at::Tensor& t) { return reinterpret_cast<S*>(t.data_ptr()); }
const bool* maybe_ptr(const std::optional<at::Tensor>& t) { return t ? t->data_ptr<bool>() : nullptr; }

// Inputs are validated in Python (workbench/ops/rglru.py); these checks only guard the memory contract.
void check(const at::Tensor& x, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == x.scalar_type() &&
                  t.sizes() == x.sizes(), "rglru_cpu: ", name, " must be a contiguous CPU tensor like x");
}

}  // namespace

// Returns (y, h_last, checkpoints): y like x; h_last (b, d) fp32; checkpoints (b, ceil(t / kCheckpoint), d)
// fp32, the state entering each interval, for the backward.
std::vector<at::Tensor> forward(const at::Tensor& x, const at::Tensor& gate_a, const at::Tensor& gate_x,
                                const at::Tensor& a_param, const std::optional<at::Tensor>& h0,
                                const std::optional<at::Tensor>& resets) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous() && x.device().is_cpu(), "rglru_cpu: x must be contiguous (b, t, d) on CPU");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, "rglru_cpu: float32 or bfloat16 only");
  check(x, gate_a, "gate_a");
  check(x, gate_x, "gate_x");
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  const Sizes n{T, D, (T + kCheckpoint - 1) / kCheckpoint};
  const at::Tensor sp = at::softplus(a_param.to(at::kFloat)).contiguous();
  const at::Tensor h0f = h0 ? h0->to(at::kFloat).contiguous() : at::Tensor();
  const std::optional<at::Tensor> rs = resets ? std::optional<at::Tensor>(resets->contiguous()) : std::nullopt;
  at::Tensor y = empty_output(x.sizes(), x.options());
  at::Tensor h_last = at::empty({B, D}, x.options().dtype(at::kFloat));
  at::Tensor ckpt = at::empty({B, n.n_ckpt, D}, x.options().dtype(at::kFloat));
  const float* h0p = h0 ? h0f.data_ptr<float>() : nullptr;
  auto run = [&](auto tag) {
    using S = decltype(tag);
    for_each_block(B, T, D, [&](int64_t b, int64_t d0, int64_t w) {
      forward_dispatch(ptr<S>(x), ptr<S>(gate_a), ptr<S>(gate_x), maybe_ptr(rs), sp.data_ptr<float>(), h0p,
                       mut_ptr<S>(y), ckpt.data_ptr<float>(), h_last.data_ptr<float>(), n, b, d0, w);
    });
  };
  if (x.scalar_type() == at::kFloat) run(float{}); else run(uint16_t{});
  return {y, h_last, ckpt};
}

// Returns (dx, d_gate_a, d_gate_x, d_a_param (d,) fp32, dh0 (b, d) fp32).
std::vector<at::Tensor> backward(const at::Tensor& dy, const at::Tensor& dh_last, const at::Tensor& x,
                                 const at::Tensor& gate_a, const at::Tensor& gate_x, const at::Tensor& a_param,
                                 const std::optional<at::Tensor>& resets, const at::Tensor& ckpt) {
  check(x, dy, "dy");
  check(x, gate_a, "gate_a");
  check(x, gate_x, "gate_x");
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  const Sizes n{T, D, (T + kCheckpoint - 1) / kCheckpoint};
  TORCH_CHECK(ckpt.sizes() == at::IntArrayRef({B, n.n_ckpt, D}) && ckpt.is_contiguous(), "rglru_cpu: bad checkpoints");
  const at::Tensor a_param_f = a_param.to(at::kFloat);
  const at::Tensor sp = at::softplus(a_param_f).contiguous();
  const at::Tensor dhl = dh_last.to(at::kFloat).contiguous();
  const std::optional<at::Tensor> rs = resets ? std::optional<at::Tensor>(resets->contiguous()) : std::nullopt;
  at::Tensor dx = empty_output(x.sizes(), x.options()), dga = empty_output(x.sizes(), x.options()),
             dgx = empty_output(x.sizes(), x.options());
  at::Tensor d_sp = at::empty({B, D}, x.options().dtype(at::kFloat));
  at::Tensor dh0 = at::empty({B, D}, x.options().dtype(at::kFloat));
  auto run = [&](auto tag) {
    using S = decltype(tag);
    for_each_block(B, T, D, [&](int64_t b, int64_t d0, int64_t w) {
      backward_dispatch(ptr<S>(dy), dhl.data_ptr<float>(), ptr<S>(x), ptr<S>(gate_a), ptr<S>(gate_x),
                        maybe_ptr(rs), sp.data_ptr<float>(), ckpt.data_ptr<float>(), mut_ptr<S>(dx),
                        mut_ptr<S>(dga), mut_ptr<S>(dgx), d_sp.data_ptr<float>(), dh0.data_ptr<float>(), n, b,
                        d0, w);
    });
  };
  if (x.scalar_type() == at::kFloat) run(float{}); else run(uint16_t{});
  // d softplus / d a_param = sigmoid(a_param) (1 above torch's threshold of 20)
  const at::Tensor d_a_param = d_sp.sum(0) * at::where(a_param_f > 20.0, at::ones_like(a_param_f), at::sigmoid(a_param_f));
  return {dx, dga, dgx, d_a_param, dh0};
}

}  // namespace rglru

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "RG-LRU scan, C++/OpenMP CPU kernels";
  m.def("forward", &rglru::forward, "RG-LRU forward: (y, h_last, checkpoints)");
  m.def("backward", &rglru::backward, "RG-LRU backward: (dx, d_gate_a, d_gate_x, d_a_param, dh0)");
  m.attr("checkpoint_every") = rglru::kCheckpoint;
}
