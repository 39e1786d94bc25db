"""How much of each RVQ level can a table predict? Held-out cross-entropy (nats per code) of every level's codes on
the pairs' dev split (held-out speakers) under three tables counted on the train split with add-one smoothing:

- `unigram`: the level's code frequencies (what a model that ignores its input scores);
- `semantic`: p(code | the frame's semantic token) -- `data.semantic_prior`, the table `--semantic-prior` adds;
- `coarser`: p(code | the same frame's code one level up), for levels 1 and finer.

A level a table predicts well is one a model can start from; one it cannot is left to the acoustic context a model
learns over many steps (README: given levels).

    python scripts/acoustic_code_tables.py PAIRS_DIR [OUT.json]
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np

from workbench.acoustic.data import Pair, Rates, load_pairs, semantic_prior, upsample_semantic
from workbench.core.errors import UserError
from workbench.core.io import atomic_write_json


def _table(keys: np.ndarray, codes: np.ndarray, n_keys: int, k: int) -> np.ndarray:
    counts = np.bincount(keys * k + codes, minlength=n_keys * k).reshape(n_keys, k) + 1.0
    return np.log(counts / counts.sum(1, keepdims=True))


def code_tables(train: list[Pair], held: list[Pair], rates: Rates, levels: int, codebook_size: int,
                semantic_vocab: int) -> list[dict]:
    """Per level: held-out cross-entropy under the unigram, semantic and coarser-code tables."""
    k = codebook_size
    stack = lambda pairs: (np.concatenate([p.codes[:levels] for p in pairs], 1),  # noqa: E731
                           np.concatenate([upsample_semantic(p.semantic, rates, 0, p.codes.shape[1]) for p in pairs]))
    (train_codes, _), (held_codes, held_sem) = stack(train), stack(held)
    prior = semantic_prior(train, rates, levels, k, semantic_vocab).numpy()
    rows = []
    for q in range(levels):
        unigram = _table(np.zeros_like(train_codes[q]), train_codes[q], 1, k)[0]
        row = {"level": q, "unigram": float(-unigram[held_codes[q]].mean()),
               "semantic": float(-prior[q][held_sem, held_codes[q]].mean())}
        if q > 0:
            coarser = _table(train_codes[q - 1], train_codes[q], k, k)
            row["coarser"] = float(-coarser[held_codes[q - 1], held_codes[q]].mean())
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pairs"), p.add_argument("out", nargs="?")
    args = p.parse_args()
    info = Path(args.pairs) / "pairs.json"
    if not info.is_file():
        p.error(f"no pairs.json in {args.pairs}: build the pairs first (acoustic train)")
    try:
        meta = json.loads(info.read_text())
        train, held = load_pairs(args.pairs, "train"), load_pairs(args.pairs, "dev")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # JSONDecodeError is a ValueError
        p.error(f"cannot read the pairs in {args.pairs}: {err}")
    try:
        if not train or not held:
            raise UserError(f"{args.pairs} needs train and dev pairs (found {len(train)} and {len(held)})")
        rows = code_tables(train, held, Rates(**meta["rates"]), meta["levels"], meta["codebook_size"],
                           meta["semantic_vocab"])
    except UserError as err:
        p.error(str(err))
    for r in rows:
        print(f"level {r['level']}: unigram {r['unigram']:.3f}, semantic token {r['semantic']:.3f}"
              + (f", coarser code {r['coarser']:.3f}" if "coarser" in r else "") + " nats")
    if args.out:
        atomic_write_json(args.out, {"pairs": str(args.pairs), "levels": rows})


if __name__ == "__main__":
    main()
