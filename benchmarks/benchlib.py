"""What the benchmark scripts share: interleaved timing (the library's), peak-memory measurement, ratio lines.

Imported by the scripts in this folder (`python benchmarks/<script>.py` puts the folder on
sys.path), never by the library.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from effnet_lab.lab.measure import interleaved  # noqa: E402, F401  (the scripts import it from here)


def add_timing_arguments(p: argparse.ArgumentParser, worker: tuple[str, str]) -> None:
    """The options the step benchmarks share: threads, rounds × iters timed steps, --quick,
    --no-memory, and the hidden --mem-worker `worker` (two names: the subprocess that measures
    one candidate's peak memory)."""
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=5, help="timing rounds (rounds x iters timed steps each)")
    p.add_argument("--iters", type=int, default=2, help="timed steps per candidate per round")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round, 1 step, no memory")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--mem-worker", nargs=2, metavar=worker, help=argparse.SUPPRESS)


def warmup_steps(a: argparse.Namespace) -> int:
    """Warm-up steps per candidate: 2; with --quick 1, and a single round of one step without the
    memory subprocesses (`a` is changed to say so)."""
    if a.quick:
        a.rounds, a.iters, a.no_memory = 1, 1, True
        return 1
    return 2


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class RssPeak:
    """Peak resident memory a stretch of code adds, seen by the kernel (every allocation torch
    makes, unlike tracemalloc): RSS is recorded at `start()`, the high-water mark is reset
    through /proc/self/clear_refs (Linux >= 4.0), and `stop()` returns VmHWM − RSS(start) in
    MiB. Without clear_refs it falls back to ru_maxrss (the whole process's peak)."""

    def start(self) -> RssPeak:
        gc.collect()
        self.before_kb = _status_kb("VmRSS") or 0
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.method = "VmHWM after clear_refs"
        except OSError:
            self.method = "ru_maxrss"
        return self

    def stop(self) -> float:
        if self.method == "ru_maxrss" or not self.before_kb:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        else:
            peak_kb = _status_kb("VmHWM") or 0
        return max(0, peak_kb - self.before_kb) / 1024


def run_worker(script: str, args: Sequence[str]) -> dict:
    """Run `script args` in a fresh interpreter; its last stdout line is a JSON object."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ratio_line(label: str, num: list[float], den: list[float], target: float | None = None) -> str:
    """Ratio of medians (judged against `target` when given); the ratio of best steps too."""
    r = statistics.median(num) / statistics.median(den)
    verdict = f"(target >= {target:.1f}x)  {'PASS' if r >= target else 'MISS'}" if target else ""
    return f"ratio {label:<46} {r:5.2f}x  {verdict:<24} best-of {max(num) / max(den):5.2f}x"
