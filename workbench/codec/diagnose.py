"""`codec diagnose`: where a Griffin-Lim codec loses its quality, measured, not guessed.

The griffinlim decoder predicts each frame's log-magnitude spectrum and Griffin-Lim supplies the phase, so every
loss on the way from the input to the output can be isolated on the same clips (PESQ-WB, mean over clips):

- `exact`: Griffin-Lim from the input's own magnitudes (no codec at all): what the phase recovery costs;
- `unquantized`: the decoder's magnitudes from the encoder's latent without the RVQ: what the autoencoder costs;
- `codec`: through the RVQ at `n_q` levels: the decoder's own magnitudes, before the postfilter;
- `codec + postfilter`: the codec as it decodes (when its postfilter is on: `model.postfilter`);
- `codec, true <band>`: the codec's magnitudes with one frequency band replaced by the input's: how much of the
  gap that band holds. A band whose repair lifts PESQ most is where training should look (the loss's
  `magnitude_tilt` came from this);
- `codec, true quiet frames`: the same repair in time, on the frames more than QUIET_DB under the clip's loudest
  (pauses, and the background of a noisy recording): whether a voice loses in its speech or in its silences;
  beside it each clip's dynamic range (95th minus 10th percentile of its frame energies, dB);
- `codec, true envelope` / `codec, true fine structure`: each frame's log spectrum split by `spectral_envelope`
  into its smooth envelope (vocal tract, microphone) and the fine structure on it (the pitch's harmonics), and one
  of the two replaced by the input's; `codec, true fine <band>` repairs the fine structure in one band only, and
  `codec, true long-term spectrum` moves the codec's mean spectrum over the clip to the input's (a static colour:
  a voice's timbre, a microphone). Beside them `fine contrast <band>`: the spread of the codec's fine structure
  over the input's in the frames that are not quiet (1 = as sharp as the input's harmonics, 0 = smooth).

Per set and per voice (`by_speaker`).

Also the mean absolute log-magnitude error of the codec per band, over all bins and over the loud ones (within
6 nepers of the frame's peak).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench.codec.evaluate import Clip, mean_over
from workbench.codec.metrics import pesq_wb
from workbench.codec.model import Codec, frame_spectrum, postfilter, spectral_envelope
from workbench.core.errors import UserError

BANDS_HZ = ((0, 1000), (1000, 2000), (2000, 4000), (4000, 8000))
LOUD_NEPERS = 6.0  # a bin within this of its frame's peak log magnitude counts as loud
QUIET_DB = 20.0  # a frame whose energy is this far under the clip's loudest frame counts as quiet


@torch.no_grad()
def diagnose_clip(codec: Codec, audio: np.ndarray, n_q: int | None = None, bands=BANDS_HZ) -> dict[str, float]:
    """PESQ of the stages above and the per-band errors for one clip (mono 16 kHz float)."""
    if codec.cfg.decoder != "griffinlim":
        raise UserError(f"codec diagnose needs the griffinlim decoder (magnitudes + Griffin-Lim); this codec's is "
                        f"{codec.cfg.decoder!r}")
    dec, n = codec.decoder, len(audio)
    wav = codec.pad(torch.as_tensor(np.asarray(audio, dtype=np.float32))[None, None])
    true = torch.log(frame_spectrum(wav[:, 0], dec.n_fft, dec.hop, dec.window).abs().clamp(min=1e-5))
    z = codec.encoder(wav)
    predicted = dec.log_magnitude(codec.quantizer.decode(codec.quantizer.encode(z, n_q, codec.cfg.rvq_beam)))
    score = lambda log_mag: pesq_wb(audio, dec.griffin_lim(log_mag.exp())[0, 0, :n].numpy())  # noqa: E731
    out = {"exact": score(true), "unquantized": score(dec.log_magnitude(z)), "codec": score(predicted)}
    if dec.contrast != (1, 1):
        out["codec + postfilter"] = score(postfilter(predicted, *dec.contrast))
    hz_per_bin, nyquist = codec.cfg.sample_rate / dec.n_fft, codec.cfg.sample_rate / 2
    band_rows = lambda lo, hi: slice(math.ceil(lo / hz_per_bin), math.ceil(hi / hz_per_bin) if hi < nyquist else None)  # noqa: E731
    error = (predicted - true).abs()[0]
    loud = true[0] > true[0].amax(0, keepdim=True) - LOUD_NEPERS
    for lo, hi in bands:
        rows, name = band_rows(lo, hi), f"{lo / 1000:g}-{hi / 1000:g} kHz"
        repaired = predicted.clone()
        repaired[:, rows] = true[:, rows]
        out[f"codec, true {name}"] = score(repaired)
        out[f"error {name}"] = float(error[rows].mean())
        out[f"loud error {name}"] = float(error[rows][loud[rows]].mean()) if loud[rows].any() else math.nan
    energy_db = 10 / math.log(10) * torch.logsumexp(2 * true[0], 0)  # per frame, dB up to a constant
    quiet = energy_db < energy_db.max() - QUIET_DB
    repaired = predicted.clone()
    repaired[0][:, quiet] = true[0][:, quiet]
    out["codec, true quiet frames"] = score(repaired)
    envelope, true_envelope = spectral_envelope(predicted), spectral_envelope(true)
    fine, true_fine = predicted - envelope, true - true_envelope
    speech = ~quiet
    out["codec, true envelope"] = score(fine + true_envelope)
    out["codec, true fine structure"] = score(envelope + true_fine)
    for lo, hi in bands:
        rows, name = band_rows(lo, hi), f"{lo / 1000:g}-{hi / 1000:g} kHz"
        repaired = predicted.clone()
        repaired[:, rows] = (envelope + true_fine)[:, rows]
        out[f"codec, true fine {name}"] = score(repaired)
        out[f"fine contrast {name}"] = (float(fine[0][rows][:, speech].std() / true_fine[0][rows][:, speech].std())
                                        if speech.sum() > 1 else math.nan)
    out["codec, true long-term spectrum"] = score(predicted + (true - predicted).mean(-1, keepdim=True))
    out["quiet share"] = float(quiet.float().mean())
    # how far the background lies under the speech: a noisy recording's quiet frames are not silent
    out["dynamic range dB"] = float(torch.quantile(energy_db, 0.95) - torch.quantile(energy_db, 0.10))
    return out


def _summary(rows: list[dict]) -> dict:
    means = {k: mean_over(rows, k) for k in rows[0]}
    gains = {k.removeprefix("codec, true "): round(v - means["codec"], 4)
             for k, v in means.items() if k.startswith("codec, true ") and v is not None and means["codec"]}
    return {"clips": len(rows), "pesq": {k: v for k, v in means.items() if k.startswith(("exact", "unquantized", "codec"))},
            "repair_gain": gains, "quiet_share": means["quiet share"], "dynamic_range_db": means["dynamic range dB"],
            "log_magnitude_error": {k: v for k, v in means.items() if "error" in k},
            "fine_contrast": {k.removeprefix("fine contrast "): v for k, v in means.items() if k.startswith("fine contrast")}}


def diagnose(codec: Codec, clip_sets: dict[str, list[Clip]], n_q: int | None = None, progress: bool = False) -> dict:
    """Per set of clips: the mean of every `diagnose_clip` figure, and how much each band's repair gains."""
    from tqdm.auto import tqdm

    sets = {}
    for name, clips in clip_sets.items():
        rows = [diagnose_clip(codec, c.audio, n_q) for c in tqdm(clips, desc=f"diagnose {name}", disable=not progress)]
        if not rows:
            continue
        speakers = sorted({c.speaker for c in clips if c.speaker})
        sets[name] = {**_summary(rows), "by_speaker": {
            s: _summary([r for r, c in zip(rows, clips) if c.speaker == s]) for s in speakers}}
    return {"n_q": n_q or codec.cfg.num_quantizers, "kbps": codec.cfg.kbps(n_q), "sets": sets,
            "what": __doc__.split("\n\n")[1].replace("\n", " ")}


def summary_text(payload: dict) -> str:
    lines = [f"codec at n_q {payload['n_q']} ({payload['kbps']:.1f} kbps), PESQ-WB:"]
    for name, s in payload["sets"].items():
        lines.append(f"  {name} ({s['clips']} clips): " + ", ".join(f"{k} {v:.3f}" for k, v in s["pesq"].items()
                                                                    if v is not None))
        lines.append("    repairing gains: " + ", ".join(f"{k} {v:+.3f}" for k, v in s["repair_gain"].items()))
        lines.append("    fine-structure contrast (codec / input): " + ", ".join(
            f"{k} {v:.2f}" for k, v in s["fine_contrast"].items() if v is not None))
        for voice, v in s.get("by_speaker", {}).items():
            lines.append(f"    {voice} ({v['clips']} clips): codec {v['pesq']['codec']:.3f}, dynamic range "
                         f"{v['dynamic_range_db']:.0f} dB, quiet frames {v['quiet_share']:.0%}, repairing them gains "
                         f"{v['repair_gain'].get('quiet frames', 0):+.3f}, its fine structure "
                         f"{v['repair_gain'].get('fine structure', 0):+.3f}, its envelope {v['repair_gain'].get('envelope', 0):+.3f}")
    return "\n".join(lines)
