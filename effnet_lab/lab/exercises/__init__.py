"""Graded exercises for the notebooks.

Each exercise computes its own right answer from ground truth (torch, the model, the
paper's formulas run through code), so a check can never drift from what the notebook
shows. In a notebook:

    from effnet_lab.lab.exercises import check, solution
    answer = ...                      # your answer
    check("mbconv.params", answer)    # prints right / not yet, with a hint
    # solution("mbconv.params")       # uncomment to reveal the worked solution

Exercises live in one module per notebook (mbconv.py, se.py, …) and register themselves
with `@exercise`. Every check is remembered in a small JSON file on this machine (no network,
no account): `progress()` lists which exercises of the workbook you have solved.
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging
import math
import os
import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...weights.checkpoint import write_text_atomic

log = logging.getLogger(__name__)

NOTEBOOKS = {"mbconv": "01_mbconv", "se": "02_squeeze_excitation", "scaling": "03_compound_scaling",
             "inference": "04_pretrained_inference", "gradcam": "05_gradcam", "finetune": "06_finetuning",
             "study": "07_scaling_experiments", "deploy": "08_deployment", "v2": "09_efficientnetv2"}
_MODULES = tuple(NOTEBOOKS)  # one exercise module per notebook
NOT_ANSWERED = Ellipsis  # the placeholder `answer = ...` in the notebooks
LINE_WIDTH = 100  # JupyterLab and Colab break long output lines mid-word; we break them between words
PROGRESS_ENV = "EFFNET_LAB_PROGRESS"  # where check() remembers results (a JSON file); "off" to not


class NotAnswered(Exception):
    """Raised by an implement-it check when the learner's function still returns nothing."""


@dataclass(frozen=True)
class Exercise:
    key: str
    question: str
    hint: str
    solution: str
    answer: Callable[[], Any]  # computes the expected answer
    tolerance: float = 1e-6  # relative, for numbers
    accept: Callable[[Any], bool] | None = None  # for questions with many right answers

    def is_right(self, value: Any) -> bool:
        """Whether `value` answers the exercise. A function given as the answer (implement-it) is
        run: what it raises reaches the caller, so `check` can say what went wrong."""
        if self.accept is not None:
            if callable(value):
                return bool(self.accept(value))
            try:
                return bool(self.accept(value))
            except (TypeError, ValueError):
                return False
        expected = self.answer()
        if isinstance(expected, bool) or not isinstance(expected, int | float):
            if isinstance(expected, tuple | list):
                return list(value) == list(expected) if isinstance(value, tuple | list) else False
            return value == expected
        try:
            return math.isclose(float(value), float(expected), rel_tol=self.tolerance, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False


_REGISTRY: dict[str, Exercise] = {}


def agrees_on_cases(fn: Any, cases: Iterable[tuple[tuple, Any]], same: Callable[[Any, Any], bool]) -> bool:
    """The judge of an implement-it exercise: run the learner's `fn` on the arguments of each
    (arguments, expected) case, in order, and ask `same(result, expected)`. False at the first
    disagreement (or when `fn` is not a function); NotAnswered when `fn` returns None, as the
    `...` stub does. Cases may be a generator, so expected values are made only as needed."""
    if not callable(fn):
        return False
    for args, expected in cases:
        result = fn(*args)
        if result is None:
            raise NotAnswered
        if not same(result, expected):
            return False
    return True


def letters(right: set[str]) -> Callable[[Any], bool]:
    """A judge for multiple-choice answers: accepts the set of letters `right`, given as a set or
    list ({"a", "c"}) or as text ("a, c", "(a) and (c)": its one-letter words)."""

    def accept(value: Any) -> bool:
        if isinstance(value, str):
            value = re.findall(r"\b[a-z]\b", value.lower())
        return {str(v).strip().strip("()").lower() for v in value} == right

    return accept


def exercise(key: str, question: str, hint: str, solution: str, tolerance: float = 1e-6,
             accept: Callable[[Any], bool] | None = None):
    """Decorator: register the function that computes the right answer (`accept`, when given,
    judges an answer instead, for questions with more than one right answer)."""

    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        _REGISTRY[key] = Exercise(key, question, hint, solution, fn, tolerance, accept)
        return fn

    return register


def get(key: str) -> Exercise:
    if key not in _REGISTRY:
        prefix = key.split(".")[0]
        if prefix in _MODULES:
            importlib.import_module(f"{__name__}.{prefix}")
    if key not in _REGISTRY:
        raise KeyError(f"no exercise {key!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def _say(text: str) -> None:
    """Print `text`, each line longer than LINE_WIDTH wrapped at spaces (code lines are shorter)."""
    print("\n".join(textwrap.fill(line, LINE_WIDTH, break_long_words=False, break_on_hyphens=False)
                    if len(line) > LINE_WIDTH else line for line in text.split("\n")))


def check(key: str, value: Any) -> None:
    """Print whether `value` answers exercise `key`, with a hint when it does not."""
    ex = get(key)
    if value is NOT_ANSWERED or value is None:
        _say(f"[{key}] not answered yet — replace `...` with your answer and run the cell again.")
        return
    try:
        right = ex.is_right(value)
    except NotAnswered:
        _say(f"[{key}] not answered yet — your function returns None: replace `...` with its body.")
        return
    except Exception as e:  # the learner's function failed: say how, not just "not quite"
        if not callable(value):
            raise
        _remember(key, False)
        _say(f"[{key}] ✘ your function raised {type(e).__name__}: {e}. Hint: {ex.hint}")
        return
    _remember(key, right)
    if right:
        _say(f"[{key}] ✔ right!")
    else:
        shown = "your function" if callable(value) else repr(value)
        _say(f"[{key}] ✘ not quite ({shown}). Hint: {ex.hint}")


def progress_file() -> Path | None:
    """The file check() records results in: $EFFNET_LAB_PROGRESS, else ~/.cache/effnet_lab/progress.json
    (None when $EFFNET_LAB_PROGRESS is "off")."""
    where = os.environ.get(PROGRESS_ENV)
    if where == "off":
        return None
    return Path(where) if where else Path.home() / ".cache" / "effnet_lab" / "progress.json"


def _load_progress(path: Path | None) -> dict[str, dict[str, Any]] | None:
    """The record at `path` ({} when there is none yet); None when the file is unreadable."""
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remember(key: str, right: bool) -> None:
    """Add one try of `key` to the progress file. Solved stays solved; an unreadable record is kept
    beside the new one (renamed *.unreadable); a file that cannot be written (a read-only home, say)
    costs a warning, never the check's answer."""
    path = progress_file()
    if path is None:
        return
    record = _load_progress(path)
    try:
        if record is None:
            kept = path.with_name(path.name + ".unreadable")
            path.replace(kept)
            log.warning("exercise progress: %s was unreadable; kept as %s, starting a new record", path, kept)
            record = {}
        entry = record.get(key, {"solved": False, "tries": 0})
        entry["tries"] = int(entry.get("tries", 0)) + 1
        entry["solved"] = bool(entry.get("solved")) or right
        entry["last_try"] = datetime.datetime.now().isoformat(timespec="seconds")
        record[key] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))
    except OSError as e:
        log.warning("exercise progress: cannot write %s (%s); set %s to another file", path, e, PROGRESS_ENV)


def progress(show: bool = True) -> dict[str, str]:
    """Every exercise of the workbook with its state on this machine: "solved", "tried" (checked,
    not yet right) or "not tried". Printed per notebook unless show=False; returned as a dict."""
    record = _load_progress(progress_file()) or {}
    states = {}
    for key in sorted(all_exercises(), key=lambda k: (list(NOTEBOOKS).index(k.split(".")[0]), k)):
        entry = record.get(key, {})
        states[key] = "solved" if entry.get("solved") else "tried" if entry.get("tries") else "not tried"
    if show:
        marks = {"solved": "✔", "tried": "✘", "not tried": "·"}
        solved = sum(s == "solved" for s in states.values())
        print(f"{solved} of {len(states)} exercises solved (record: {progress_file()})")
        for module, notebook in NOTEBOOKS.items():
            keys = [k for k in states if k.split(".")[0] == module]
            line = "  ".join(f"{marks[states[k]]} {k.split('.', 1)[1]}" for k in keys)
            print(f"  {notebook:<24} {sum(states[k] == 'solved' for k in keys)}/{len(keys)}   {line}")
    return states


def solution(key: str) -> None:
    """Reveal the worked solution (and the right answer) of exercise `key`."""
    ex = get(key)
    answer = ex.answer()
    shown = "" if callable(answer) else f"\n\nAnswer: {answer!r}"  # implement-it: the solution is the code
    _say(f"[{key}] solution:\n\n{ex.solution}{shown}")


@lru_cache(maxsize=2)
def lite0(pretrained: bool = True):
    """efficientnet_lite0 in eval mode, built once per session for every exercise that runs it
    (each `check` recomputes its answer). Callers must not modify it."""
    from ...model.registry import create_model

    return create_model("efficientnet_lite0", pretrained=pretrained).eval()


def all_exercises() -> dict[str, Exercise]:
    for name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
    return dict(_REGISTRY)
