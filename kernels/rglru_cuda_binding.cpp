// Python binding of the CUDA kernels (kernels/rglru_cuda.cu), kept out of the .cu so nvcc never sees pybind11.
#include <torch/extension.h>

#include <optional>
#include <vector>

#include "rglru_math.h"

namespace rglru {
int64_t auto_chunks(int64_t B, int64_t T, int64_t D, int64_t device, bool backward);
std::vector<at::Tensor> cuda_forward(const at::Tensor& x, const at::Tensor& gate_a, const at::Tensor& gate_x,
                                     const at::Tensor& a_param, const std::optional<at::Tensor>& h0,
                                     const std::optional<at::Tensor>& resets, int64_t num_chunks);
std::vector<at::Tensor> cuda_backward(const at::Tensor& dy, const at::Tensor& dh_last, const at::Tensor& x,
                                      const at::Tensor& gate_a, const at::Tensor& gate_x, const at::Tensor& a_param,
                                      const std::optional<at::Tensor>& resets, const at::Tensor& ckpt,
                                      int64_t num_chunks);
}  // namespace rglru

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  namespace py = pybind11;
  m.doc() = "RG-LRU scan, CUDA kernels";
  m.def("forward", &rglru::cuda_forward, "RG-LRU forward: (y, h_last, checkpoints); num_chunks 0 = auto",
        py::arg("x"), py::arg("gate_a"), py::arg("gate_x"), py::arg("a_param"), py::arg("h0"), py::arg("resets"),
        py::arg("num_chunks") = 0);
  m.def("backward", &rglru::cuda_backward, "RG-LRU backward: (dx, d_gate_a, d_gate_x, d_a_param, dh0)",
        py::arg("dy"), py::arg("dh_last"), py::arg("x"), py::arg("gate_a"), py::arg("gate_x"), py::arg("a_param"),
        py::arg("resets"), py::arg("checkpoints"), py::arg("num_chunks") = 0);
  m.def("auto_chunks", &rglru::auto_chunks, "time chunks the forward (or backward) uses for (B, T, D) on a device",
        py::arg("B"), py::arg("T"), py::arg("D"), py::arg("device") = -1, py::arg("backward") = false);
  m.attr("checkpoint_every") = rglru::kCheckpoint;
}
