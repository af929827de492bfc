"""Notebook 09's exercises: the right answers pass, the usual wrong ones fail with the hint, and the
printed solutions pass their own checks when pasted. The Fused-MBConv count is judged against
torchvision's FusedMBConv; the pieces agree with this library's blocks too."""

from __future__ import annotations

import json

import torch
from conftest import said

from effnet_lab.lab.exercises import all_exercises, check, get, solution
from effnet_lab.lab.exercises.v2 import _fused_cases, _torchvision_fused_params
from effnet_lab.model.blocks import FusedMBConv


def _verdict(capsys, key, value) -> str:
    check(key, value)
    return capsys.readouterr().out


def test_pasted_solutions_pass_their_own_checks(capsys):
    for key, name in (("v2.fused_params", "fused_mbconv_params"), ("v2.train_size", "train_size")):
        code = get(key).solution  # all of it: the remark after the code is a comment
        scope: dict = {}
        exec(code, scope)
        assert "✔ right" in _verdict(capsys, key, scope[name]), code


def test_usual_mistakes_get_the_hint(capsys):
    no_bn = lambda i, o, e, k: k * k * i * i * e + i * e * o if e > 1 else k * k * i * o  # noqa: E731
    always_two_convs = lambda i, o, e, k: k * k * i * i * e + 2 * i * e + i * e * o + 2 * o  # noqa: E731
    depthwise = lambda i, o, e, k: i * i * e + 2 * i * e + k * k * i * e + 2 * i * e + i * e * o + 2 * o  # noqa: E731
    for wrong in (no_bn, always_two_convs, depthwise):
        out = _verdict(capsys, "v2.fused_params", wrong)
        assert "✘ not quite" in out and said(get("v2.fused_params").hint) in said(out)
    per_epoch = lambda ep, n, m, s, e: round(s + (e - s) * ep / (n - 1)) if n > 1 else e  # noqa: E731
    no_single_stage = lambda ep, n, m, s, e: round(s + (e - s) * (ep * m // n) / max(m - 1, 1))  # noqa: E731
    for wrong in (per_epoch, no_single_stage):
        assert "✘ not quite" in _verdict(capsys, "v2.train_size", wrong)


def test_rounding_halves_up_is_accepted(capsys):
    """Python rounds 214.5 to 214, int(x + 0.5) to 215; the question does not care which."""
    half_up = lambda ep, n, m, s, e: int(s + (e - s) * (ep * m // n) / (m - 1) + 0.5) if m > 1 else e  # noqa: E731
    assert "✔ right" in _verdict(capsys, "v2.train_size", half_up)


def test_stubs_are_not_answered(capsys):
    def stub(*args):
        ...

    for key in ("v2.fused_params", "v2.train_size"):
        assert "not answered yet" in _verdict(capsys, key, stub)


def test_fused_where(capsys):
    for right in ({"a", "c"}, "a, c", ["C", "a"]):
        assert "✔ right" in _verdict(capsys, "v2.fused_where", right)
    for wrong in ({"a"}, {"a", "b", "c"}, "d"):
        assert "✘ not quite" in _verdict(capsys, "v2.fused_where", wrong)
    solution("v2.fused_where")
    assert "Answer: ['a', 'c']" in capsys.readouterr().out


def test_torchvision_and_this_library_count_fused_blocks_alike():
    """The judge (torchvision's block) and the block notebook 09 shows agree on every checked case."""
    for in_ch, out_ch, expand, kernel, stride in _fused_cases():
        ours = FusedMBConv(in_ch, out_ch, kernel, stride, expand)
        assert sum(p.numel() for p in ours.parameters()) == _torchvision_fused_params(in_ch, out_ch, expand,
                                                                                      kernel, stride)
        assert ours(torch.zeros(1, in_ch, 8, 8)).shape[1] == out_ch


def test_all_registered():
    assert {"v2.fused_params", "v2.train_size", "v2.fused_where"} <= set(all_exercises())


def test_progress_remembers_each_check_on_this_machine(tmp_path, monkeypatch, capsys):
    """check() records every answered try in a JSON file; progress() reads it back per notebook.
    Solved stays solved after a later wrong try; an unanswered check is not a try."""
    from effnet_lab.lab import exercises

    record = tmp_path / "progress.json"
    monkeypatch.setenv(exercises.PROGRESS_ENV, str(record))
    check("v2.fused_where", ...)
    assert not record.exists()
    check("v2.fused_where", {"b"})
    check("v2.fused_where", {"a", "c"})
    check("v2.fused_where", {"d"})
    check("v2.train_size", lambda *a: 1)
    capsys.readouterr()
    states = exercises.progress()
    out = capsys.readouterr().out
    assert states["v2.fused_where"] == "solved" and states["v2.train_size"] == "tried"
    assert states["deploy.fake_quant"] == "not tried"
    assert set(states) == set(all_exercises())
    assert f"1 of {len(states)} exercises solved" in out and "09_efficientnetv2" in out and "✔ fused_where" in out
    saved = json.loads(record.read_text())
    assert saved["v2.fused_where"]["tries"] == 3 and saved["v2.fused_where"]["solved"] is True


def test_progress_survives_a_broken_or_unwritable_record(tmp_path, monkeypatch, capsys, caplog):
    from effnet_lab.lab import exercises

    record = tmp_path / "progress.json"
    record.write_text("{not json")
    monkeypatch.setenv(exercises.PROGRESS_ENV, str(record))
    assert exercises.progress(show=False)["v2.fused_where"] == "not tried"
    check("v2.fused_where", {"a", "c"})  # a fresh record; the unreadable one is kept beside it
    assert "✔ right" in capsys.readouterr().out
    assert json.loads(record.read_text())["v2.fused_where"]["solved"]
    assert (tmp_path / "progress.json.unreadable").read_text() == "{not json"
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv(exercises.PROGRESS_ENV, str(blocked / "progress.json"))  # its folder is a file
    check("v2.fused_where", {"a", "c"})
    assert "✔ right" in capsys.readouterr().out and "cannot write" in caplog.text
    monkeypatch.setenv(exercises.PROGRESS_ENV, "off")
    assert exercises.progress_file() is None
