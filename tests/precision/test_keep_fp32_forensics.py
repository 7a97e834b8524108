"""keep_fp32 matching and wrapping, and the pure overflow diagnosis."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_optkit.precision.forensics import OverflowTracer, diagnose
from lightning_optkit.precision.keep_fp32 import (
    apply_keep_fp32,
    match_keep_fp32,
    remove_keep_fp32,
)
from tests.helpers.precision_models import Amplify


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Sequential(nn.Linear(8, 8), nn.GELU()),
                         nn.Linear(8, 2))


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ("1", ["1"]),                                   # a module name
        ("LayerNorm", ["1"]),                           # a type name
        ("torch.nn.Linear", ["0", "2.0", "3"]),         # a dotted class path
        (nn.GELU, ["2.1"]),                             # a class
        (r"2\..*", ["2.0", "2.1"]),                     # a regular expression over full names
        ("Module", ["0", "1", "2", "2.0", "2.1", "3"]),  # base classes match too
    ],
)
def test_entries_match_by_name_type_or_pattern(entry, names):
    key = entry if isinstance(entry, str) else f"{entry.__module__}.{entry.__qualname__}"
    assert match_keep_fp32(_model(), [entry]) == {key: names}


class RecordingNorm(nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        self.seen.update(inp=x.dtype, out=out.dtype)
        return out


def test_wrapped_module_runs_in_fp32_under_autocast_and_unwraps():
    model = _model()
    model[1] = RecordingNorm(8)
    seen = model[1].seen = {}
    assert apply_keep_fp32(model, ["1"], "cpu") == 1
    assert apply_keep_fp32(model, ["1"], "cpu") == 0  # idempotent
    with torch.autocast("cpu", dtype=torch.float16):
        out = model(torch.randn(3, 4))
    assert seen == {"inp": torch.float32, "out": torch.float32}
    assert out.dtype == torch.float16  # the next Linear runs in fp16 again
    remove_keep_fp32(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.randn(3, 4))
    assert seen["inp"] == torch.bfloat16


def test_diagnose_names_first_forward_and_backward_culprits():
    report = diagnose(
        forward=[("enc", "Linear", True), ("amp", "Amplify", False), ("head", "Linear", False)],
        backward=[("head", "Linear", False), ("amp", "Amplify", False)],
        params=[("enc.weight", False), ("head.weight", False), ("head.bias", True)],
        step=7,
    )
    assert (report.forward_module, report.forward_type, report.backward_module) == ("amp", "Amplify", "head")
    assert report.nonfinite_params == ["enc.weight", "head.weight"]
    assert report.culprit == "amp" and "keep_fp32=['amp']" in report.suggestion
    assert "overflow at step 7" in report.message()
    assert diagnose([("a", "Linear", True)], [], [("a.weight", True)]) is None
    only_params = diagnose([], [], [("w", False)])
    assert only_params.culprit is None and "lower init_scale" in only_params.suggestion


def test_tracer_records_only_while_armed():
    model = nn.Sequential(nn.Linear(4, 4), Amplify(1e6), nn.Linear(4, 1))
    tracer = OverflowTracer(model, max_steps=2)
    x = torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.float16):
        model(x).float().sum().backward()
    unarmed = tracer.collect(model.named_parameters(), step=0)
    assert unarmed.forward_module is None and unarmed.backward_module is None  # no hooks, no records
    assert unarmed.nonfinite_params == ["2.weight"]
    model.zero_grad()
    tracer.arm()
    with torch.autocast("cpu", dtype=torch.float16):
        model(x).float().sum().backward()
    report = tracer.collect(model.named_parameters(), step=1)
    assert report.forward_module == "1" and report.forward_type == "Amplify"
    assert report.backward_module is None  # d(sum)/d(out) is finite: only the forward overflowed
    tracer.disarm()
    assert not tracer.armed and all(not m._forward_hooks for m in model.modules())
