"""Graded exercises for the notebooks.

Each exercise computes its own right answer from ground truth (torch, the model, the
paper's formulas run through code), so a check can never drift from what the notebook
shows. In a notebook:

    from effnet_lab.lab.exercises import check, solution
    answer = ...                      # your answer
    check("mbconv.params", answer)    # prints right / not yet, with a hint
    # solution("mbconv.params")       # uncomment to reveal the worked solution

Exercises live in one module per notebook (mbconv.py, se.py, …) and register themselves
with `@exercise`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_MODULES = ("mbconv", "se", "scaling", "inference", "gradcam", "finetune", "study", "deploy")
NOT_ANSWERED = Ellipsis  # the placeholder `answer = ...` in the notebooks


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


def check(key: str, value: Any) -> None:
    """Print whether `value` answers exercise `key`, with a hint when it does not."""
    ex = get(key)
    if value is NOT_ANSWERED or value is None:
        print(f"[{key}] not answered yet — replace `...` with your answer. {ex.question}")
        return
    try:
        right = ex.is_right(value)
    except NotAnswered:
        print(f"[{key}] not answered yet — your function returns None: replace `...` with its body. {ex.question}")
        return
    except Exception as e:  # the learner's function failed: say how, not just "not quite"
        if not callable(value):
            raise
        print(f"[{key}] ✘ your function raised {type(e).__name__}: {e}. Hint: {ex.hint}")
        return
    if right:
        print(f"[{key}] ✔ right!")
    else:
        shown = "your function" if callable(value) else repr(value)
        print(f"[{key}] ✘ not quite ({shown}). Hint: {ex.hint}")


def solution(key: str) -> None:
    """Reveal the worked solution (and the right answer) of exercise `key`."""
    ex = get(key)
    answer = ex.answer()
    shown = "" if callable(answer) else f"\n\nAnswer: {answer!r}"  # implement-it: the solution is the code
    print(f"[{key}] {ex.question}\n\n{ex.solution}{shown}")


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
