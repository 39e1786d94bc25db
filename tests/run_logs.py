"""Reading a run folder's logs in tests: strictly (NaN or infinity anywhere is a failure), and without the
wall-clock fields that differ between two otherwise identical runs."""

import json
from pathlib import Path


def strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def records(run: Path) -> list[dict]:
    return [strict(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]
