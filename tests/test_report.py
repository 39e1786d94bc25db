"""The report page (`workbench.pipeline.report`): built from a report folder of realistic JSON (made with the
writers' own helpers where they are cheap), robust to missing and broken files, and loaded in headless Chromium:
no console error, the headline table with this run's figures, plotly's figures drawn, audio players linked.

The browser is driven by tests/chromium.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
from chromium import CONSOLE_HOOK, devtools_page, load_in_chromium

from workbench.core.io import atomic_write_json
from workbench.pipeline.report import PAGE, headline_rows, write_report_page


def _tone(seconds: float, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def full_report(folder: Path) -> Path:
    """A report folder shaped like a laptop run's: each payload has the keys its writer produces."""
    import torch

    from workbench.bench.decode import TARGETS, ratios
    from workbench.eval.longform import collapse_onset_s, loop_onset_s, token_measures
    from workbench.lm.evaluate import stratify
    from workbench.tokenizer.evaluate import compare

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    atomic_write_json(folder / "run.json", {
        "preset": "laptop", "notebooks": {"00_corpus": 61.2, "05_extrapolation_16min": 901.5},
        "expected_minutes": {"00_corpus": 2, "05_extrapolation_16min": 15}, "total_seconds": 962.7,
        "python": "3.11.9", "torch": "2.4.0", "machine": "x86_64", "cpus": 2, "cuda": False,
        "settings": {"extrapolation": {"minutes": 16.0, "bin_seconds": 60.0}}})
    atomic_write_json(folder / "corpus.json", {
        "hours": 5.5, "speakers": 10, "chapters": 40, "segments": 120, "build_seconds": 50.0,
        "splits": {"train": {"hours": 4.5, "recordings": 30, "speakers": ["a", "b"]},
                   "dev": {"hours": 0.5, "recordings": 5, "speakers": ["x"]},
                   "test": {"hours": 0.5, "recordings": 5, "speakers": ["y"]}}})
    tok = {"mfcc_kmeans": {"kind": "mfcc_kmeans", "num_units": 256, "pnmi": 0.3012, "phone_purity": 0.41,
                           "unit_edit_distance": 0.62, "parallel_pairs": 20},
           "learned": {"kind": "learned", "num_units": 256, "pnmi": 0.4123, "phone_purity": 0.52,
                       "unit_edit_distance": 0.44, "parallel_pairs": 20}}
    tok["learned_vs_baseline"] = compare(tok)
    atomic_write_json(folder / "tokenizer.json", tok)
    atomic_write_json(folder / "scan.json", {"preset": "laptop", "cpu": {"copy_gbps": 9.5, "backends": {
        "reference": {"fwd_gbps": 1.2, "bwd_gbps": 0.9}, "native": {"fwd_gbps": 6.1, "bwd_gbps": 5.0},
        "broken": {"error": "not built"}}}})
    nll = torch.cat([torch.full((1, 250), 3.0), torch.full((1, 500), 3.1)], 1) + 0.05 * torch.rand(1, 750)
    atomic_write_json(folder / "lm.json", {"tokens": "data/build/tokens/laptop", "synthetic_tokens": False,
                                          "held_out": {"split": "test", "recordings": 1, "seconds": 30.0},
                                          "bin_seconds": 5.0, "models": {name: {
                                              "run": f"runs/lm/laptop/{name}", "model": name, "parameters": 11_100_000,
                                              "steps": 600, "train_window_s": 10.0, "extrapolation_factor": 3.0,
                                              "nll_within_train_window": 3.012,
                                              "nll_beyond_train_window": beyond,
                                              "nll_by_time": stratify(nll + (0 if name == "griffin" else 1.0), 5.0)}
                                              for name, beyond in (("griffin", 3.104), ("transformer", 4.377))}})
    codec_rows = [{"set": "synthetic-test", "system": "ours", "n_q": n, "kbps": 0.5 * n, "kbps_file": 0.5 * n,
                   "pesq": 1.2 + 0.12 * n, "stoi": 0.7 + 0.03 * n, "mel_distance": 1.0 - 0.1 * n, "clips": 8,
                   "pesq_undefined": 0} for n in range(1, 7)]
    codec_rows += [{"set": "synthetic-test", "system": s, "n_q": None, "kbps": k, "kbps_file": k, "pesq": p,
                    "stoi": 0.87, "mel_distance": 0.5, "clips": 8, "pesq_undefined": 0}
                   for s, k, p in (("codec2-3200", 3.2, 1.81), ("opus-6k", 6.0, 1.86))]
    atomic_write_json(folder / "codec.json", {"preset": "laptop", "checkpoint": "runs/codec/laptop",
                                             "trained_steps": 4000,
                                             "model": {"kbps_levels": {str(n): 0.5 * n for n in range(1, 7)},
                                                       "causal": False, "frame_rate": 50.0, "codebook_size": 1024},
                                             "sets": {"synthetic-test": {"source": "data/build/laptop", "clips": 8,
                                                                         "seconds": 32.0}},
                                             "results": codec_rows, "speed": None, "notes": ["a note"]})
    keys = ["spkr_sim_prompt", "spkr_sim_other", "spkr_sim_gap", "spkr_sim_swap_prompt", "spkr_sim_swap_source",
            "spkr_sim_codec", "spkr_sim_codec_other", "spkr_sim_original", "spkr_sim_original_other",
            "wer", "wer_codec", "wer_original", "realtime_factor"]
    atomic_write_json(folder / "acoustic.json", {"preset": "laptop", "clips": 6,
                                                **{k: round(float(rng.uniform(0.2, 0.8)), 3) for k in keys}})
    # extrapolation: streams measured with the writer's own functions
    rate, prompt = 25, 250
    healthy = rng.integers(0, 256, prompt + 4 * 60 * rate)
    stuck = healthy.copy()
    stuck[prompt + 2 * 60 * rate:] = 7  # the Transformer collapses onto one unit from minute 2
    models, streams = {}, {"griffin": healthy, "transformer": stuck}
    for name, stream in streams.items():
        bins = token_measures(stream, prompt, bin_seconds=60.0, nll=rng.uniform(2.9, 3.2, len(stream) - 1))
        models[name] = {"run": f"runs/lm/laptop/{name}", "parameters": 11_100_000, "steps": 600,
                        "trained_now": False, "train_window_s": 10.0, "minutes": 4.0,
                        "generated_tokens": len(stream) - prompt, "generated_s": (len(stream) - prompt) / rate,
                        "times_train_window": 25.0, "wall_s": 120.0, "tokens_per_s": 50.0, "measures": bins,
                        "loop_onset_s": loop_onset_s(bins), "collapse_onset_s": collapse_onset_s(bins),
                        "cache": [{"t_s": t, "cache_bytes": 1e5 if name == "griffin" else 1e5 + t * 1e3,
                                   "tokens_per_s": 50.0} for t in range(0, 241, 60)],
                        "cache_bytes_start": 1e5, "cache_bytes_end": 1e5 if name == "griffin" else 3.4e5,
                        "cache_growth": 1.0}
    assert models["transformer"]["collapse_onset_s"] is not None  # the fixture shows what it means to
    sims = [{"from_s": float(a), "to_s": float(a + 60), "similarity": s} for a, s in ((0, 0.81), (60, 0.78))]
    wav = folder / "extrapolation-griffin.wav"
    sf.write(wav, _tone(2.0), 16000)
    sf.write(folder / "extrapolation-transformer.wav", _tone(2.0, 330.0), 16000)
    atomic_write_json(folder / "extrapolation.json", {
        "preset": "laptop", "config": {"minutes": 4.0}, "tokens": "data/build/tokens/laptop",
        "synthetic_tokens": False, "scorer": "griffin",
        "prompt": {"recording": "emma-03", "speaker": "y", "split": "test", "tokens": prompt, "seconds": 10.0},
        "machine": {"torch_threads": 1}, "models": models,
        "ground_truth": {"seconds": 240.0, "measures": token_measures(healthy, prompt, bin_seconds=60.0),
                         "loop_onset_s": None, "collapse_onset_s": None},
        "units_end": {"seconds": 20, "streams": {n: s[-500:].tolist() for n, s in streams.items()}},
        "audio": {"ground_truth": {"status": "skipped", "reason": "no corpus recording found"},
                  "griffin": {"status": "ok", "offset_s": 0.0, "audio": str(wav), "prompt_transcript": "a b",
                              "seconds": 120.0, "bin_seconds": 60.0, "sc_l": None,
                              "speaker_similarity": sims}},
        "llm_judge": {"status": "skipped", "winner": None, "reason": "no judge"}})
    lengths = [128, 1024, 16384]
    bench = {name: {"parameters": 11_100_000, "prefill_s": 0.01, "flatness": {"ratio": 1.05 if name == "griffin" else 4.0},
                    "lengths": [{"length": n, "latency_s": 0.004 * (1 if name == "griffin" else n / 128),
                                 "state_bytes": 1e5 if name == "griffin" else 800.0 * n,
                                 "peak_bytes_batch1": 2e5 if name == "griffin" else 1e5 + 800.0 * n,
                                 "batch": 512 if name == "griffin" else max(1, 512 * 128 // n),
                                 "throughput_tok_s": 5e4 if name == "griffin" else 5e4 * 128 / n,
                                 "decode_s": n * 0.004 * (1 if name == "griffin" else n / 1024),
                                 "integrated": n > 2048} for n in lengths]}
             for name in ("griffin", "transformer")}
    atomic_write_json(folder / "decode.json", {"config": {"budget_mb": 2048.0}, "machine": {}, "device": "cpu",
                                              "memory_method": "tracker", "targets": TARGETS, "models": bench,
                                              **ratios(bench), "preset": "laptop"})
    return folder


def test_headline_rows_say_not_run_for_missing_files(tmp_path):
    atomic_write_json(tmp_path / "corpus.json", {"hours": 0.1, "splits": {}})
    (tmp_path / "decode.json").write_text('{"models": ')  # a torn file
    path = write_report_page(tmp_path)
    text = path.read_text()
    assert path == tmp_path / PAGE and "not run" in text and "decode.json is not readable JSON" in text
    rows = headline_rows({})
    assert rows and all(r["run"] == "not run" for r in rows)
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temporary left behind


def test_headline_rows_carry_this_runs_figures(tmp_path):
    from workbench.pipeline.report import load_reports

    data, broken = load_reports(full_report(tmp_path / "run"))
    assert not broken
    rows = {r["claim"]: r for r in headline_rows(data)}
    assert all(r["status"] == "ok" for r in rows.values()), [r for r in rows.values() if r["status"] != "ok"]
    assert "PNMI learned 0.412 vs MFCC k-means 0.301 (+37%)" in rows["Tokenizer: learned vs MFCC k-means"]["run"]
    assert "ours 1.92 at 3.0 kbps, codec2-3200 1.81, opus-6k 1.86" in rows["Codec vs Codec2 / Opus (PESQ-WB)"]["run"]
    assert "transformer: NLL 3.012 within its 10 s training window, 4.377 beyond it" in \
        rows["Extrapolation: NLL by position"]["run"]
    assert "collapse from 2.0 min" in rows["Extrapolation: 16-minute generation"]["run"]
    assert "griffin (from 0.0 min): 0.81 → 0.78" in rows["Speaker similarity over time"]["run"]
    assert f"throughput ×{data['decode']['throughput_ratio_16k']:.1f}" in rows["Decode throughput at 16k tokens"]["run"]


def test_page_renders_in_headless_chromium(tmp_path):
    folder = full_report(tmp_path / "laptop-run")
    page = write_report_page(folder)
    html = page.read_text()
    assert html.count("plotly.js v") <= 2 and html.count("<script type='text/javascript'>") == 1  # embedded once
    body = html.split("</head>", 1)[1]
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", body)  # nothing loaded from the network
    probe = folder / "probe.html"  # the page plus a hook that marks console.error, beside it (same relative links)
    probe.write_text(html.replace("<head>", "<head>" + CONSOLE_HOOK, 1))
    dom, errors = load_in_chromium(probe.as_uri())
    assert not errors, errors
    table = dom[dom.index("id=\"headline\""):dom.index("</table>", dom.index("id=\"headline\""))]
    assert "PNMI learned 0.412 vs MFCC k-means 0.301" in table and "collapse from 2.0 min" in table
    figures = re.findall(r'id="figure-\d+"', dom)
    assert len(figures) >= 15
    assert dom.count('class="main-svg"') >= len(figures)  # every figure was drawn by plotly.js, offline
    assert 'src="extrapolation-griffin.wav"' in dom and 'src="extrapolation-transformer.wav"' in dom
    assert "05_extrapolation_16min" in dom and "901.5" in dom  # the timings


def test_console_errors_are_caught(tmp_path):
    """The check above can fail: a page that throws, or logs an error, is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><head>" + CONSOLE_HOOK + "</head><body><script>console.error('broken figure');"
                   "</script><script>notDefined();</script></body></html>")
    _, errors = load_in_chromium(bad.as_uri(), budget_ms=1000)
    assert any("broken figure" in e for e in errors) and any("Uncaught ReferenceError" in e for e in errors)


def test_smoke_run_page_renders(tmp_path):
    """A smoke run has run.json and a few files: the page still loads cleanly and says what did not run."""
    atomic_write_json(tmp_path / "run.json", {"preset": "smoke", "notebooks": {"00_corpus": 3.0}, "total_seconds": 3.0})
    atomic_write_json(tmp_path / "lm.json", {"models": {"griffin": {"nll_by_time": "garbage"}}})  # a malformed one
    page = write_report_page(tmp_path)
    dom, errors = load_in_chromium(page.as_uri(), budget_ms=3000)
    assert not errors, errors
    assert "not run" in dom and "not drawn: TypeError" in dom


def test_report_audio_plays_from_the_file(tmp_path):
    """Driven over DevTools: the page's players load their .wav by relative link and play, with no error."""
    folder = full_report(tmp_path / "laptop-run")
    page = write_report_page(folder)
    with devtools_page(page.as_uri()) as browser:
        browser.wait_for("document.querySelectorAll('audio').length >= 2 && document.querySelector('.main-svg')")
        browser.evaluate("Promise.all(Array.from(document.querySelectorAll('audio')).map(a => a.play()))")
        durations = browser.wait_for("(() => { const a = Array.from(document.querySelectorAll('audio'));"
                                     " return a.every(x => x.currentTime > 0.2) && a.map(x => x.duration); })()",
                                     timeout_s=30)
        errors = browser.errors()
    assert not errors, errors
    assert [round(d, 1) for d in durations] == [2.0, 2.0]  # both 2 s tones, found by their relative src


def test_the_report_command(tmp_path, capsys):
    from workbench.cli import main

    atomic_write_json(tmp_path / "corpus.json", {"hours": 0.1, "splits": {"train": {"hours": 0.1, "recordings": 2}}})
    assert main(["report", "--reports", str(tmp_path)]) == 0
    assert "index.html" in capsys.readouterr().out and (tmp_path / PAGE).is_file()
    assert main(["report", "--reports", str(tmp_path / "missing")]) != 0  # a UserError: one line, no traceback
    assert "no report folder" in capsys.readouterr().err
