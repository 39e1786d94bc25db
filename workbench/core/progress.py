"""Progress a person can read, from any stage, across processes.

A stage calls `report(stage, done, total, unit, elapsed_s, ...)` as it goes; when the environment variable
``WORKBENCH_PROGRESS`` names a file, one JSON line is appended to it, else nothing happens. `reproduce` sets it
for each notebook (papermill's kernel inherits the environment), and a `ProgressPrinter` thread tails the file
and prints one line at most every ~10 s::

    [reproduce 03_griffin_training] griffin step 120/600 (02:31 elapsed, ~05:10 left; all ~1:02:10 left)

`report` never raises (progress must never stop a run) and writes each line with one ``write`` on a file opened
for appending, so lines from several processes do not interleave. Lines of one stage are thinned to one a second
(the last one, ``done == total``, is always written).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

ENV = "WORKBENCH_PROGRESS"
MIN_INTERVAL_S = 1.0  # per stage, between written lines

_last_written: dict[str, float] = {}


def report(stage: str, done: float, total: float | None = None, unit: str = "", elapsed_s: float | None = None,
           eta_s: float | None = None, note: str = "", *, budget_s: float | None = None) -> None:
    """Record that `stage` has done `done` of `total` `unit`s in `elapsed_s`. Without `eta_s` the time left is
    estimated from the rate so far and, where the stage has a wall-clock budget (`budget_s`, e.g. a training
    run's max_minutes), capped by what is left of it. A no-op unless $WORKBENCH_PROGRESS is set; never raises."""
    try:
        path = os.environ.get(ENV)
        if not path:
            return
        now = time.time()
        last = total is not None and done >= total
        if not last and now - _last_written.get(stage, 0.0) < MIN_INTERVAL_S:
            return
        if eta_s is None and elapsed_s is not None:
            eta_s = estimate_left(done, total, elapsed_s, budget_s)
        record = {"t": round(now, 3), "pid": os.getpid(), "stage": str(stage), "done": done, "total": total,
                  "unit": str(unit), "elapsed_s": _finite(elapsed_s), "eta_s": _finite(eta_s), "note": str(note)}
        _append(path, record)
        _last_written[stage] = now
    except Exception:  # noqa: BLE001 -- progress must never stop the work it reports on
        pass


def _append(path: str, record: dict[str, Any]) -> None:
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write on an O_APPEND descriptor: whole lines, even from several processes
    finally:
        os.close(fd)


def announce(text: str) -> None:
    """A line the terminal of `reproduce` prints as it comes (what was reused, resumed or made), beside the
    progress lines that are thinned to one every few seconds. A no-op unless $WORKBENCH_PROGRESS is set."""
    try:
        path = os.environ.get(ENV)
        if path:
            _append(path, {"t": round(time.time(), 3), "pid": os.getpid(), "announce": str(text)})
    except Exception:  # noqa: BLE001 -- progress must never stop the work it reports on
        pass


def estimate_left(done: float, total: float | None, elapsed_s: float, budget_s: float | None = None) -> float | None:
    """Seconds left: the rate so far applied to what remains, capped by the budget's remainder."""
    left = None
    if total and done > 0 and elapsed_s > 0:
        left = elapsed_s * max(total - done, 0) / done
    if budget_s:
        by_budget = max(budget_s - elapsed_s, 0.0)
        left = by_budget if left is None else min(left, by_budget)
    return left


def _finite(x: float | None) -> float | None:
    return round(float(x), 2) if x is not None and math.isfinite(float(x)) else None


def read_new(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines of `path` after byte `offset`, and the offset after them (a line still being
    written is left for the next call; an unreadable line is skipped)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except OSError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    records = []
    for line in chunk[:end].splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records, offset + end


def clock(seconds: float | None) -> str:
    """12:05 or 1:02:05."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(max(seconds, 0)))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _count(x: Any) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) else str(x)


def format_record(record: dict[str, Any], prefix: str, after_s: float | None = None) -> str:
    """`[prefix] stage done/total unit (elapsed, ~left[; all ~left])[ -- note]`; `after_s`: the expected time of
    what follows this stage (the rest of the run), added to the stage's own estimate for the run's."""
    what = f"{record.get('stage', '?')} {record.get('unit', '')}".rstrip()
    done, total = record.get("done"), record.get("total")
    what += f" {_count(done)}" + (f"/{_count(total)}" if total is not None else "")
    timing = [f"{clock(record.get('elapsed_s'))} elapsed"]
    eta = record.get("eta_s")
    if eta is not None:
        timing.append(f"~{clock(eta)} left")
        if after_s is not None:
            timing.append(f"all ~{clock(eta + after_s)} left")
    line = f"[{prefix}] {what} ({', '.join(timing[:2])}" + (f"; {timing[2]}" if len(timing) > 2 else "") + ")"
    return line + (f" -- {record['note']}" if record.get("note") else "")


class ProgressPrinter:
    """A thread that tails a progress file and prints its newest line at most every `every_s` seconds.

    `after_s` (a number or a callable returning one) is the expected time of everything after the current
    notebook, so each line can also say how long the whole run has left: the stage's own estimate, what the
    notebook's `expected_s` holds beyond it (its other stages), and `after_s`. With `heartbeat_s`, a stretch that long
    without any report prints ``[prefix] running (elapsed[, expected ~expected_s])``: a stage that reports
    nothing is still visibly alive."""

    def __init__(self, path: str | os.PathLike, prefix: str, *, every_s: float = 10.0, poll_s: float = 0.5,
                 after_s: float | Callable[[], float | None] | None = None, out: TextIO | None = None,
                 heartbeat_s: float | None = None, expected_s: float | None = None):
        self.path, self.prefix, self.every_s, self.poll_s = Path(path), prefix, every_s, poll_s
        self.after_s, self.out, self.heartbeat_s, self.expected_s = after_s, out, heartbeat_s, expected_s
        self.started = time.monotonic()
        self.offset, self.last_print, self.pending = 0, -math.inf, None
        self.printed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress {prefix}", daemon=True)

    def __enter__(self) -> "ProgressPrinter":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def poll(self) -> str | None:
        """Read what is new; print the newest record if `every_s` has passed since the last line printed."""
        records, self.offset = read_new(self.path, self.offset)
        for record in records:
            if "announce" in record:
                line = f"[{self.prefix}] {record['announce']}"
                print(line, file=self.out or sys.stderr, flush=True)
                self.printed.append(line)
        records = [r for r in records if "announce" not in r]
        if records:
            self.pending = records[-1]
        now = time.monotonic()
        quiet_since = max(self.started, self.last_print)
        if self.pending is not None and now - self.last_print >= self.every_s:
            after = self.after_s() if callable(self.after_s) else self.after_s
            eta = self.pending.get("eta_s")
            if after is not None and self.expected_s is not None and eta is not None:
                # what this notebook still has to do beyond the reporting stage (a codec, then SoundStorm)
                after += max(0.0, self.expected_s - (now - self.started) - eta)
            line = format_record(self.pending, self.prefix, after)
        elif self.pending is None and self.heartbeat_s is not None and now - quiet_since >= self.heartbeat_s:
            line = f"[{self.prefix}] running ({clock(now - self.started)} elapsed" + (
                f", expected ~{clock(self.expected_s)})" if self.expected_s is not None else ")")
        else:
            return None
        print(line, file=self.out or sys.stderr, flush=True)
        self.printed.append(line)
        self.pending, self.last_print = None, now
        return line

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 -- a display problem must not stop the run
                pass
            self._stop.wait(self.poll_s)
