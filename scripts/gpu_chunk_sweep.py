"""Time the CUDA RG-LRU kernels at every forced number of time chunks, at the shapes the workbench runs: the
measurement behind `auto_chunks` (kernels/rglru_cuda.cu), which decides how many chunks a (b, t, d) call uses.

For each shape and each chunk count (powers of two up to t / 128, the shortest chunk the launcher allows) it
times the forward and the backward alone (the extension's own entry points, no autograd), median of
`--repeats`, and reports achieved bandwidth against the same bytes as `bench scan` (forward 4, backward 7
tensors of b*t*d elements) and against a `copy_` of the same size on the same GPU. It also records what
`auto_chunks` picks, so the table says how far the heuristic is from the best count.

    python scripts/gpu_chunk_sweep.py OUT.json          (a CUDA device; builds the extension on first use)
"""

from __future__ import annotations

import argparse

import torch

from workbench.bench.scan import median_time
from workbench.core.io import atomic_write_json
from workbench.ops import build

SHAPES = {  # name: (b, t, d)
    "bench scan (laptop preset)": (8, 8192, 2560),
    "small LM training window": (8, 3000, 768),
    "paper LM training micro-batch": (4, 6000, 2560),
    "large batch": (32, 8192, 2560),
    "one long stream": (1, 65536, 2560),
}


def median_ms(fn, repeats: int) -> float:
    return 1e3 * median_time(fn, repeats, torch.cuda.synchronize)


def sweep(ext, shape: tuple[int, int, int], dtype: torch.dtype, repeats: int) -> dict:
    b, t, d = shape
    n, size = b * t * d, torch.empty((), dtype=dtype).element_size()
    g = torch.Generator(device="cuda").manual_seed(0)
    x, gate_a, gate_x, dy = (torch.randn(shape, device="cuda", generator=g).to(dtype) for _ in range(4))
    a_param = torch.linspace(-6.0, 4.0, d, device="cuda")
    h0 = torch.zeros(b, d, device="cuda")
    dh = torch.zeros(b, d, device="cuda")
    src, dst = torch.randn(n, device="cuda").to(dtype), torch.empty(n, device="cuda", dtype=dtype)
    copy_gbps = 2 * n * size / median_ms(lambda: dst.copy_(src), repeats) * 1e-6
    rows, chunks = [], 1
    while chunks == 1 or t // chunks >= 128:
        _, _, ckpt = ext.forward(x, gate_a, gate_x, a_param, h0, None, chunks)
        fwd = median_ms(lambda: ext.forward(x, gate_a, gate_x, a_param, h0, None, chunks), repeats)
        bwd = median_ms(lambda: ext.backward(dy, dh, x, gate_a, gate_x, a_param, None, ckpt, chunks), repeats)
        rows.append({"chunks": chunks, "fwd_ms": round(fwd, 4), "bwd_ms": round(bwd, 4),
                     "fwd_fraction_of_copy": round(4 * n * size / fwd * 1e-6 / copy_gbps, 3),
                     "bwd_fraction_of_copy": round(7 * n * size / bwd * 1e-6 / copy_gbps, 3)})
        chunks *= 2
    best_fwd = min(rows, key=lambda r: r["fwd_ms"])
    best_bwd = min(rows, key=lambda r: r["bwd_ms"])
    return {"shape": list(shape), "dtype": str(dtype).removeprefix("torch."), "copy_gbps": round(copy_gbps, 1),
            "auto_chunks": {"fwd": int(ext.auto_chunks(b, t, d, -1)),
                            "bwd": int(ext.auto_chunks(b, t, d, -1, backward=True))}, "rows": rows,
            "best_fwd_chunks": best_fwd["chunks"], "best_bwd_chunks": best_bwd["chunks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_chunk_sweep: no CUDA device visible")
    ext = build.load_extension("cuda")
    props = torch.cuda.get_device_properties(0)
    result = {"device": props.name, "sms": props.multi_processor_count, "torch": torch.__version__, "shapes": {}}
    for name, shape in SHAPES.items():
        for dtype in (torch.bfloat16, torch.float32) if name.startswith("bench") else (torch.bfloat16,):
            key = f"{name}, {str(dtype).removeprefix('torch.')}"
            result["shapes"][key] = entry = sweep(ext, shape, dtype, args.repeats)
            torch.cuda.empty_cache()  # the shape's tensors are gone with sweep(); hand their memory back
            by_chunks = {r["chunks"]: r for r in entry["rows"]}
            auto = entry["auto_chunks"]
            print(f"{key} {tuple(shape)}: copy {entry['copy_gbps']:.0f} GB/s; auto chunks fwd {auto['fwd']}, "
                  f"bwd {auto['bwd']}; best fwd {entry['best_fwd_chunks']} "
                  f"({by_chunks[entry['best_fwd_chunks']]['fwd_fraction_of_copy']} of copy), best bwd "
                  f"{entry['best_bwd_chunks']} ({by_chunks[entry['best_bwd_chunks']]['bwd_fraction_of_copy']})",
                  flush=True)
            for r in entry["rows"]:
                print(f"   {r['chunks']:>4} chunks: fwd {r['fwd_ms']:8.3f} ms ({r['fwd_fraction_of_copy']:.3f})   "
                      f"bwd {r['bwd_ms']:8.3f} ms ({r['bwd_fraction_of_copy']:.3f})", flush=True)
    atomic_write_json(args.out, result)  # no half-written file if it is interrupted


if __name__ == "__main__":
    main()
