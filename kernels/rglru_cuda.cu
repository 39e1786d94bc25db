// RG-LRU scan on CUDA. Shapes: b batch, t time, d channels; (b, t, d) contiguous; fp32 state.
//
// One thread per (b, d) channel walks its time range; a warp covers 32 consecutive channels, so every load
// and store is coalesced along d. Time is processed in tiles of kCheckpoint steps: all of a tile's loads
// are issued first (into registers), then the dependent scan runs on them, so each thread keeps
// 3 x kCheckpoint loads in flight - that, not occupancy, is what hides DRAM latency in a memory-bound scan.
//
// Forward (one pass): read x, gate_a, gate_x; write y; every kCheckpoint steps also write the fp32 state
// (1/16 of a state-sized tensor) for the backward.
// Backward (one pass, reverse): per tile, re-load the inputs, recompute the states from the tile's
// checkpoint into registers, then sweep the tile backwards with dy; gates are recomputed, never stored.
//
// When b * d is too small to fill the GPU, time is split into `num_chunks` chunks (multiples of
// kCheckpoint) run in parallel:
//   1. local pass: each chunk scans from a zero state and records its end state and its total decay
//      prod(a) (the backward records the same for the reverse recurrence of dL/dh);
//   2. carry pass: one thread per channel combines the chunk summaries sequentially,
//      s_{c+1} = decay_c * s_c + local_c, giving the true state entering every chunk;
//   3. the ordinary pass runs on every chunk from its true initial state.
// The local pass re-reads the inputs, so chunking trades ~1.75x the bytes for num_chunks x parallelism;
// `auto_chunks` chooses it for the forward only when b * d leaves most of the GPU idle, for the backward
// always (measured on an H200). See kernels/README.md.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <optional>
#include <vector>

#include "rglru_math.h"

namespace rglru {

int64_t auto_chunks(int64_t B, int64_t T, int64_t D, int64_t device, bool backward);

namespace {

constexpr int kThreads = 128;
constexpr int64_t kMinChunk = 8 * kCheckpoint;  // shorter chunks spend more on carries than they gain
constexpr int64_t kBackwardChunks = 64;         // the backward's floor (see auto_chunks)

template <typename T> struct Cvt;
template <> struct Cvt<float> {
  static __device__ __forceinline__ float load(float v) { return v; }
  static __device__ __forceinline__ float store(float v) { return v; }
};
template <> struct Cvt<__nv_bfloat16> {
  static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};
template <> struct Cvt<__half> {
  static __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};

struct Shape {
  int64_t B, T, D, n_ckpt, chunk_len;
  int num_chunks;
};

// The thread's channel and time range; false if the thread has no channel.
struct Coords {
  int64_t b, d, t_begin, t_end, chunk_idx;  // chunk_idx: offset of (b, chunk, d) in (B, num_chunks, D)
};
__device__ __forceinline__ bool coords(const Shape& s, Coords& c) {
  c.d = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (c.d >= s.D) return false;
  c.b = blockIdx.y;
  c.t_begin = int64_t(blockIdx.z) * s.chunk_len;
  c.t_end = min(s.T, c.t_begin + s.chunk_len);
  c.chunk_idx = (c.b * s.num_chunks + blockIdx.z) * s.D + c.d;
  return true;
}

struct ForwardArgs {
  const void* x;
  const void* gate_a;
  const void* gate_x;
  const bool* resets;     // (B, T) or null
  const float* a_param;   // (D,)
  const float* h_init;    // (B, num_chunks, D) state entering each chunk, or null for zeros
  void* y;                // (B, T, D), or null in the local pass
  float* ckpt;            // (B, n_ckpt, D), or null in the local pass
  float* h_out;           // (B, num_chunks, D) state leaving each chunk, or null
  float* decay_out;       // (B, num_chunks, D) product of a over the chunk, or null
};

template <typename T>
__global__ void __launch_bounds__(kThreads) forward_kernel(ForwardArgs p, Shape s) {
  Coords c;
  if (!coords(s, c)) return;
  const int64_t base = c.b * s.T * s.D + c.d;
  const T* x = static_cast<const T*>(p.x) + base;
  const T* gate_a = static_cast<const T*>(p.gate_a) + base;
  const T* gate_x = static_cast<const T*>(p.gate_x) + base;
  T* y = p.y ? static_cast<T*>(p.y) + base : nullptr;
  const bool* resets = p.resets ? p.resets + c.b * s.T : nullptr;
  const float sp = softplus_f(p.a_param[c.d]);
  float h = p.h_init ? p.h_init[c.chunk_idx] : 0.0f, decay = 1.0f;

  for (int64_t t0 = c.t_begin; t0 < c.t_end; t0 += kCheckpoint) {
    if (p.ckpt) p.ckpt[(c.b * s.n_ckpt + t0 / kCheckpoint) * s.D + c.d] = h;
    T xs[kCheckpoint], as[kCheckpoint], gs[kCheckpoint];
    bool rs[kCheckpoint];
#pragma unroll
    for (int k = 0; k < kCheckpoint; ++k) {
      if (t0 + k < c.t_end) {
        xs[k] = x[(t0 + k) * s.D], as[k] = gate_a[(t0 + k) * s.D], gs[k] = gate_x[(t0 + k) * s.D];
        rs[k] = resets && resets[t0 + k];
      }
    }
#pragma unroll
    for (int k = 0; k < kCheckpoint; ++k) {
      if (t0 + k < c.t_end) {
        const Gates g = gates(Cvt<T>::load(as[k]), Cvt<T>::load(gs[k]), sp, rs[k]);
        h = g.a * h + g.i * g.m * Cvt<T>::load(xs[k]);
        decay *= g.a;
        if (y) y[(t0 + k) * s.D] = Cvt<T>::store(h);
      }
    }
  }
  if (p.h_out) p.h_out[c.chunk_idx] = h;
  if (p.decay_out) p.decay_out[c.chunk_idx] = decay;
}

struct BackwardArgs {
  const void* dy;
  const void* x;
  const void* gate_a;
  const void* gate_x;
  const bool* resets;
  const float* a_param;
  const float* ckpt;      // (B, n_ckpt, D)
  const float* g_init;    // (B, num_chunks, D) dL/dh flowing into each chunk from its right (dh_last for the last)
  void* dx;
  void* d_gate_a;
  void* d_gate_x;
  float* d_sp;            // (B, num_chunks, D) partial sums of dL/dsoftplus(a_param)
  float* dh0;             // (B, D) written by the first chunk, or null
};

template <typename T>
__global__ void __launch_bounds__(kThreads) backward_kernel(BackwardArgs p, Shape s) {
  Coords c;
  if (!coords(s, c)) return;
  const int64_t base = c.b * s.T * s.D + c.d;
  const T* dy = static_cast<const T*>(p.dy) + base;
  const T* x = static_cast<const T*>(p.x) + base;
  const T* gate_a = static_cast<const T*>(p.gate_a) + base;
  const T* gate_x = static_cast<const T*>(p.gate_x) + base;
  T* dx = static_cast<T*>(p.dx) + base;
  T* d_gate_a = static_cast<T*>(p.d_gate_a) + base;
  T* d_gate_x = static_cast<T*>(p.d_gate_x) + base;
  const bool* resets = p.resets ? p.resets + c.b * s.T : nullptr;
  const float sp = softplus_f(p.a_param[c.d]);
  float carry = p.g_init[c.chunk_idx], dsp = 0.0f;

  const int64_t last_tile = c.t_begin + (c.t_end - 1 - c.t_begin) / kCheckpoint * kCheckpoint;
  for (int64_t t0 = last_tile; t0 >= c.t_begin; t0 -= kCheckpoint) {
    T xs[kCheckpoint], as[kCheckpoint], gs[kCheckpoint], dys[kCheckpoint];
    bool rs[kCheckpoint];
    float h_prev[kCheckpoint];
#pragma unroll
    for (int k = 0; k < kCheckpoint; ++k) {
      if (t0 + k < c.t_end) {
        const int64_t o = (t0 + k) * s.D;
        xs[k] = x[o], as[k] = gate_a[o], gs[k] = gate_x[o], dys[k] = dy[o];
        rs[k] = resets && resets[t0 + k];
      }
    }
    float h = p.ckpt[(c.b * s.n_ckpt + t0 / kCheckpoint) * s.D + c.d];
#pragma unroll
    for (int k = 0; k < kCheckpoint; ++k) {
      if (t0 + k < c.t_end) {
        const Gates g = gates(Cvt<T>::load(as[k]), Cvt<T>::load(gs[k]), sp, rs[k]);
        h_prev[k] = h;
        h = g.a * h + g.i * g.m * Cvt<T>::load(xs[k]);
      }
    }
#pragma unroll
    for (int k = kCheckpoint - 1; k >= 0; --k) {
      if (t0 + k < c.t_end) {
        const Gates g = gates(Cvt<T>::load(as[k]), Cvt<T>::load(gs[k]), sp, rs[k]);
        const float G = carry + Cvt<T>::load(dys[k]);
        const StepGrads sg = step_backward(g, G, Cvt<T>::load(xs[k]), h_prev[k], sp, rs[k]);
        const int64_t o = (t0 + k) * s.D;
        dx[o] = Cvt<T>::store(sg.dx), d_gate_a[o] = Cvt<T>::store(sg.d_gate_a), d_gate_x[o] = Cvt<T>::store(sg.d_gate_x);
        dsp += sg.d_sp;
        carry = g.a * G;
      }
    }
  }
  p.d_sp[c.chunk_idx] = dsp;
  if (p.dh0 && blockIdx.z == 0) p.dh0[c.b * s.D + c.d] = carry;
}

// The backward's local pass: the reverse recurrence g_{t-1} = a_t (dy_t + g_t) over one chunk from g = 0;
// records g leaving the chunk at its left end and the chunk's total decay.
template <typename T>
__global__ void __launch_bounds__(kThreads) backward_local_kernel(const void* dy_, const void* gate_a_, const bool* resets_,
                                                                  const float* a_param, float* g_out, float* decay_out, Shape s) {
  Coords c;
  if (!coords(s, c)) return;
  const int64_t base = c.b * s.T * s.D + c.d;
  const T* dy = static_cast<const T*>(dy_) + base;
  const T* gate_a = static_cast<const T*>(gate_a_) + base;
  const bool* resets = resets_ ? resets_ + c.b * s.T : nullptr;
  const float sp = softplus_f(a_param[c.d]);
  float g = 0.0f, decay = 1.0f;
  for (int64_t t = c.t_end - 1; t >= c.t_begin; --t) {
    const float a = (resets && resets[t]) ? 0.0f : exp_f(-kC * sigmoid_f(Cvt<T>::load(gate_a[t * s.D])) * sp);
    g = a * (g + Cvt<T>::load(dy[t * s.D]));
    decay *= a;
  }
  g_out[c.chunk_idx] = g;
  decay_out[c.chunk_idx] = decay;
}

// Sequential combination of chunk summaries, one thread per channel: state_in[c] = s, s = decay[c] s + local[c]
// over chunks in order (forward) or reversed (backward); the final s goes to `last` (h_last, or dh0).
__global__ void carry_kernel(const float* decay, const float* local, const float* init, float* state_in, float* last,
                             int64_t B, int64_t D, int num_chunks, bool reverse) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B * D) return;
  const int64_t b = i / D, d = i % D;
  float s = init ? init[i] : 0.0f;
  for (int k = 0; k < num_chunks; ++k) {
    const int64_t j = (b * num_chunks + (reverse ? num_chunks - 1 - k : k)) * D + d;
    state_in[j] = s;
    s = decay[j] * s + local[j];
  }
  if (last) last[i] = s;
}

Shape make_shape(const at::Tensor& x, int64_t num_chunks, bool backward) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  Shape s{B, T, D, (T + kCheckpoint - 1) / kCheckpoint, 0, 1};
  if (num_chunks <= 0) num_chunks = auto_chunks(B, T, D, x.device().index(), backward);
  // chunk length: a multiple of kCheckpoint so checkpoint tiles never straddle chunks
  const int64_t tiles = std::max<int64_t>(1, s.n_ckpt);
  const int64_t tiles_per_chunk = (tiles + std::min(num_chunks, tiles) - 1) / std::min(num_chunks, tiles);
  s.chunk_len = tiles_per_chunk * kCheckpoint;
  s.num_chunks = static_cast<int>(std::max<int64_t>(1, (T + s.chunk_len - 1) / s.chunk_len));
  TORCH_CHECK(B <= 65535, "rglru_cuda: batch size above 65535 is not supported");
  return s;
}

dim3 grid(const Shape& s) { return dim3(static_cast<unsigned>((s.D + kThreads - 1) / kThreads), s.B, s.num_chunks); }

template <typename F>
void dispatch(at::ScalarType dtype, const F& f) {
  switch (dtype) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(__nv_bfloat16{}); break;
    case at::kHalf: f(__half{}); break;
    default: TORCH_CHECK(false, "rglru_cuda: float32, bfloat16 or float16 inputs only, got ", dtype);
  }
}

void check(const at::Tensor& x, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda() && t.is_contiguous() && t.scalar_type() == x.scalar_type() && t.sizes() == x.sizes() &&
                  t.device() == x.device(), "rglru_cuda: ", name, " must be a contiguous CUDA tensor like x");
}

const bool* maybe_resets(const std::optional<at::Tensor>& r) {
  if (!r) return nullptr;
  TORCH_CHECK(r->is_cuda() && r->is_contiguous() && r->scalar_type() == at::kBool, "rglru_cuda: resets must be contiguous bool");
  return r->data_ptr<bool>();
}

}  // namespace

// Time chunks for a (B, T, D) problem on `device`, each >= kMinChunk long. The forward: 1 (a single pass)
// unless B * D channels leave the GPU mostly idle (< 128 threads per SM), then enough chunks for ~512 threads
// per SM; its local pass re-reads every input, which costs more than the parallelism buys once the SMs are
// busy. The backward takes at least min(64, t / 128) chunks: on an H200 it gained from chunks at every shape
// measured, +65% at 8 x 8192 x 2560 bf16, where the forward lost (kernels/measurements/h200-2026-12-04/
// chunk_sweep.json; 64 is the most measured at t >= 8192).
int64_t auto_chunks(int64_t B, int64_t T, int64_t D, int64_t device, bool backward) {
  const auto index = device < 0 ? at::cuda::current_device() : static_cast<c10::DeviceIndex>(device);
  const int64_t sms = at::cuda::getDeviceProperties(index)->multiProcessorCount;
  const int64_t channels = B * D;
  const int64_t most = std::max<int64_t>(1, T / kMinChunk);
  const int64_t forward = channels >= 128 * sms ? 1 : std::min((512 * sms + channels - 1) / channels, most);
  return backward ? std::max(forward, std::min(kBackwardChunks, most)) : forward;
}

std::vector<at::Tensor> cuda_forward(const at::Tensor& x, const at::Tensor& gate_a, const at::Tensor& gate_x,
                                     const at::Tensor& a_param, const std::optional<at::Tensor>& h0,
                                     const std::optional<at::Tensor>& resets, int64_t num_chunks) {
  TORCH_CHECK(x.dim() == 3 && x.is_cuda() && x.is_contiguous(), "rglru_cuda: x must be a contiguous (b, t, d) CUDA tensor");
  check(x, gate_a, "gate_a");
  check(x, gate_x, "gate_x");
  const c10::cuda::CUDAGuard guard(x.device());
  const Shape s = make_shape(x, num_chunks, false);
  const auto f32 = x.options().dtype(at::kFloat);
  const at::Tensor ap = a_param.to(f32).contiguous();
  const at::Tensor h0f = h0 ? h0->to(f32).contiguous() : at::Tensor();
  at::Tensor y = at::empty_like(x);
  at::Tensor h_last = at::empty({s.B, s.D}, f32);
  at::Tensor ckpt = at::empty({s.B, s.n_ckpt, s.D}, f32);
  if (s.T == 0) {
    h_last.copy_(h0 ? h0f : at::zeros_like(h_last));
    return {y, h_last, ckpt};
  }
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  ForwardArgs p{x.data_ptr(), gate_a.data_ptr(), gate_x.data_ptr(), maybe_resets(resets), ap.data_ptr<float>(),
                h0 ? h0f.data_ptr<float>() : nullptr, y.data_ptr(), ckpt.data_ptr<float>(), h_last.data_ptr<float>(),
                nullptr};
  at::Tensor h_in;
  if (s.num_chunks > 1) {
    at::Tensor local = at::empty({s.B, s.num_chunks, s.D}, f32), decay = at::empty_like(local);
    h_in = at::empty_like(local);
    ForwardArgs lp = p;
    lp.h_init = nullptr, lp.y = nullptr, lp.ckpt = nullptr, lp.h_out = local.data_ptr<float>(),
    lp.decay_out = decay.data_ptr<float>();
    dispatch(x.scalar_type(), [&](auto tag) { forward_kernel<decltype(tag)><<<grid(s), kThreads, 0, stream>>>(lp, s); });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t n = s.B * s.D;
    carry_kernel<<<(n + 255) / 256, 256, 0, stream>>>(decay.data_ptr<float>(), local.data_ptr<float>(), p.h_init,
                                                      h_in.data_ptr<float>(), h_last.data_ptr<float>(), s.B, s.D,
                                                      s.num_chunks, false);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    p.h_init = h_in.data_ptr<float>(), p.h_out = nullptr;
  }
  dispatch(x.scalar_type(), [&](auto tag) { forward_kernel<decltype(tag)><<<grid(s), kThreads, 0, stream>>>(p, s); });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, h_last, ckpt};
}

std::vector<at::Tensor> cuda_backward(const at::Tensor& dy, const at::Tensor& dh_last, const at::Tensor& x,
                                      const at::Tensor& gate_a, const at::Tensor& gate_x, const at::Tensor& a_param,
                                      const std::optional<at::Tensor>& resets, const at::Tensor& ckpt, int64_t num_chunks) {
  check(x, dy, "dy");
  check(x, gate_a, "gate_a");
  check(x, gate_x, "gate_x");
  const c10::cuda::CUDAGuard guard(x.device());
  const Shape s = make_shape(x, num_chunks, true);
  TORCH_CHECK(ckpt.sizes() == at::IntArrayRef({s.B, s.n_ckpt, s.D}) && ckpt.is_contiguous(), "rglru_cuda: bad checkpoints");
  const auto f32 = x.options().dtype(at::kFloat);
  const at::Tensor ap = a_param.to(f32).contiguous();
  const at::Tensor dhl = dh_last.to(f32).contiguous();
  at::Tensor dx = at::empty_like(x), dga = at::empty_like(x), dgx = at::empty_like(x);
  at::Tensor d_sp = at::zeros({s.B, s.num_chunks, s.D}, f32);
  at::Tensor dh0 = at::empty({s.B, s.D}, f32);
  if (s.T == 0) {
    dh0.copy_(dhl);
  } else {
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    BackwardArgs p{dy.data_ptr(), x.data_ptr(), gate_a.data_ptr(), gate_x.data_ptr(), maybe_resets(resets),
                   ap.data_ptr<float>(), ckpt.data_ptr<float>(), dhl.data_ptr<float>(), dx.data_ptr(), dga.data_ptr(),
                   dgx.data_ptr(), d_sp.data_ptr<float>(), dh0.data_ptr<float>()};
    at::Tensor g_in;
    if (s.num_chunks > 1) {
      at::Tensor local = at::empty({s.B, s.num_chunks, s.D}, f32), decay = at::empty_like(local);
      g_in = at::empty_like(local);
      dispatch(x.scalar_type(), [&](auto tag) {
        backward_local_kernel<decltype(tag)><<<grid(s), kThreads, 0, stream>>>(
            dy.data_ptr(), gate_a.data_ptr(), p.resets, p.a_param, local.data_ptr<float>(), decay.data_ptr<float>(), s);
      });
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const int64_t n = s.B * s.D;
      carry_kernel<<<(n + 255) / 256, 256, 0, stream>>>(decay.data_ptr<float>(), local.data_ptr<float>(),
                                                        dhl.data_ptr<float>(), g_in.data_ptr<float>(),
                                                        dh0.data_ptr<float>(), s.B, s.D, s.num_chunks, true);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      p.g_init = g_in.data_ptr<float>(), p.dh0 = nullptr;
    }
    dispatch(x.scalar_type(), [&](auto tag) { backward_kernel<decltype(tag)><<<grid(s), kThreads, 0, stream>>>(p, s); });
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // d softplus / d a_param = sigmoid(a_param) (1 above torch's threshold of 20). The dims are an explicit
  // IntArrayRef: a bare {0, 1} also matches sum(DimnameList) in torch 2.11's headers (ambiguous there).
  const at::Tensor d_a_param =
      d_sp.sum(at::IntArrayRef{0, 1}) * at::where(ap > 20.0, at::ones_like(ap), at::sigmoid(ap));
  return {dx, dga, dgx, d_a_param, dh0};
}

}  // namespace rglru
