"""DynamicGradScaler on CPU fp16 autocast: scale sequence, counters, fused optimizers, state."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from lightning_optkit.precision.ladder import CollapseDetector
from lightning_optkit.precision.options import FallbackPolicy, ScalerConfig
from lightning_optkit.precision.scaler import DynamicGradScaler


def _run(scaler: DynamicGradScaler, bad: list[int], fused: bool = False, clip: float | None = None,
         seed: int = 0) -> tuple[list[float], nn.Module]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=fused)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    scales = []
    for flag in bad:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.mse_loss(model(x), y)
        if flag:
            loss = loss * math.inf
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
    return scales, model


def test_hysteresis_scale_sequence_and_exact_counts():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=64.0, hysteresis=2, growth_interval=3, min_scale=2.0))
    bad = [0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1]
    scales, _ = _run(scaler, bad)
    # overflow 1 is tolerated, overflow 2 halves; then every overflow halves until the floor;
    # 3 clean steps grow the scale and restore the tolerance
    assert scales == [64, 64, 64, 32, 16, 8, 4, 2, 2, 2, 2, 4, 4]
    stats = scaler.stats()
    assert stats["skipped_steps"] == sum(bad) == scaler.skipped_steps
    assert stats["steps"] == len(bad)
    assert stats["consecutive_skips"] == 1
    assert stats["hysteresis_left"] == 1


def test_hysteresis_one_matches_grad_scaler():
    bad = [0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    ours, _ = _run(DynamicGradScaler("cpu", ScalerConfig(init_scale=256.0, hysteresis=1, growth_interval=2,
                                                         min_scale=1e-8, max_scale=1e9)), bad)
    reference = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=2)
    theirs = []
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for flag in bad:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.mse_loss(model(x), y)
        reference.scale(loss * math.inf if flag else loss).backward()
        reference.step(opt)
        reference.update()
        theirs.append(reference.get_scale())
    assert ours == theirs


def test_consecutive_hysteresis_restores_after_a_clean_step():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=64.0, hysteresis=2, growth_interval=100,
                                                   consecutive_hysteresis=True))
    scales, _ = _run(scaler, [1, 0, 1, 0, 1, 1])
    assert scales == [64, 64, 64, 64, 64, 32]


def test_min_and_max_scale_bound_the_scale():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=8.0, hysteresis=1, growth_interval=1, min_scale=2.0,
                                                   max_scale=16.0))
    scales, _ = _run(scaler, [1, 1, 1, 1, 0, 0, 0, 0])
    assert scales == [4, 2, 2, 2, 4, 8, 16, 16]
    assert scaler.stats()["floor_streak"] == 0
    floor = DynamicGradScaler("cpu", ScalerConfig(init_scale=2.0, hysteresis=1, min_scale=2.0))
    _run(floor, [1, 1, 1])
    assert floor.stats()["floor_streak"] == 3


def test_fused_adamw_skips_inside_the_kernel_and_is_counted():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=64.0, hysteresis=1, growth_interval=100))
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    before = [p.detach().clone() for p in model.parameters()]
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.float16):
        loss = model(torch.randn(8, 4)).sum() * math.inf
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert scaler.skipped_steps == 1
    assert scaler.get_scale() == 32.0


def test_unscale_then_fused_step_with_clipping_matches_non_fused():
    bad = [0, 0, 1, 0, 0]
    _, fused = _run(DynamicGradScaler("cpu", ScalerConfig(init_scale=256.0)), bad, fused=True, clip=0.1)
    _, plain = _run(DynamicGradScaler("cpu", ScalerConfig(init_scale=256.0)), bad, fused=False, clip=0.1)
    for a, b in zip(fused.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_and_plain_grad_scaler_state():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=64.0, hysteresis=2, growth_interval=3))
    _run(scaler, [1, 1, 0, 1])
    state = scaler.state_dict()
    assert state["scale"] == 16.0 and state["skipped_steps"] == 3 and state["steps"] == 4
    restored = DynamicGradScaler("cpu", ScalerConfig(init_scale=1024.0, hysteresis=2, growth_interval=3))
    restored.load_state_dict(state)
    assert restored.get_scale() == 16.0
    assert restored.stats() == scaler.stats()
    plain = torch.amp.GradScaler("cpu", init_scale=128.0)
    from_plain = DynamicGradScaler("cpu")
    from_plain.load_state_dict(plain.state_dict())
    assert from_plain.get_scale() == 128.0 and from_plain.skipped_steps == 0
    clamped = DynamicGradScaler("cpu", ScalerConfig(max_scale=64.0))
    clamped.load_state_dict({"scale": 2.0**20})
    assert clamped.get_scale() == 64.0
    with pytest.raises(ValueError, match="no 'scale'"):
        DynamicGradScaler("cpu").load_state_dict({})


def test_counting_needs_no_host_read():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=8.0))
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler.scale(model(torch.ones(1, 2)).sum()).backward()
    scaler.step(opt)
    original_item = torch.Tensor.item
    calls = []

    def spy(self):
        calls.append(1)
        return original_item(self)

    torch.Tensor.item = spy  # type: ignore[method-assign]
    try:
        scaler.update()
    finally:
        torch.Tensor.item = original_item  # type: ignore[method-assign]
    assert calls == []
    assert scaler.stats()["steps"] == 1


def test_the_scaler_is_built_from_its_config():
    config = ScalerConfig(init_scale=32.0, growth_factor=4.0, backoff_factor=0.25, growth_interval=7, hysteresis=3,
                          min_scale=2.0, max_scale=512.0, consecutive_hysteresis=True)
    scaler = DynamicGradScaler("cpu", config)
    assert scaler.config is config and scaler.get_scale() == 32.0
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(), scaler.get_growth_interval()) == (4.0, 0.25, 7)
    assert (scaler.hysteresis, scaler.min_scale, scaler.max_scale) == (3, 2.0, 512.0)
    assert scaler.consecutive_hysteresis
    assert DynamicGradScaler("cpu").config == ScalerConfig()
    with pytest.raises(ValueError, match=r"config=\{'init': 1\} is not allowed: ScalerConfig has no field 'init'"):
        DynamicGradScaler("cpu", {"init": 1})  # type: ignore[arg-type]


def test_unused_scaler_allocates_nothing():
    scaler = DynamicGradScaler("cuda" if torch.cuda.is_available() else "cpu", ScalerConfig(init_scale=32.0))
    assert scaler.skipped_steps == 0 and scaler.stats()["scale"] == 32.0
    scaler.set_scale(8.0)
    assert scaler.state_dict()["scale"] == 8.0
    assert scaler._scale is None


def _reference(flags, init, hysteresis, interval, factor, backoff, lo, hi, consecutive):
    """The documented rule in plain Python."""
    scale, left, tracker, out = min(max(init, lo), hi), hysteresis, 0, []
    for found in flags:
        if found:
            tracker, left = 0, left - 1
            if left <= 0:
                scale, left = max(scale * backoff, lo), 0
        else:
            tracker += 1
            if tracker >= interval:
                scale, tracker, left = min(scale * factor, hi), 0, hysteresis
            elif consecutive:
                left = hysteresis
        out.append(scale)
    return out


@settings(max_examples=60, deadline=None)
@given(
    flags=st.lists(st.booleans(), max_size=40),
    hysteresis=st.integers(1, 4),
    interval=st.integers(1, 5),
    exponent=st.integers(0, 12),
    floor=st.integers(0, 4),
    consecutive=st.booleans(),
)
def test_update_rule_matches_the_documented_reference(flags, hysteresis, interval, exponent, floor,
                                                      consecutive):
    config = ScalerConfig(init_scale=2.0**exponent, hysteresis=hysteresis, growth_interval=interval,
                          growth_factor=2.0, backoff_factor=0.5, min_scale=2.0**floor, max_scale=2.0**10,
                          consecutive_hysteresis=consecutive)
    scaler = DynamicGradScaler("cpu", config)
    scales = []
    for found in flags:
        scaler.record_step(found)
        scales.append(scaler.get_scale())
    assert scales == _reference(flags, 2.0**exponent, hysteresis, interval, 2.0, 0.5, 2.0**floor, 2.0**10,
                                consecutive)
    stats = scaler.stats()
    assert stats["skipped_steps"] == sum(flags) and stats["steps"] == len(flags)


def _overflowing_step(scaler: DynamicGradScaler) -> None:
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler.scale(model(torch.ones(1, 2)).sum() * math.inf).backward()
    scaler.step(opt)
    scaler.update()


def test_lagged_stats_read_the_previous_steps_counters():
    scaler = DynamicGradScaler("cpu", ScalerConfig(init_scale=1.0, hysteresis=1, min_scale=1.0))
    detector = CollapseDetector(FallbackPolicy(patience=1))
    _overflowing_step(scaler)
    assert scaler.stats_lagged() is None  # nothing older than this step yet: no read at all
    _overflowing_step(scaler)
    lagged = scaler.stats_lagged()
    assert lagged is not None and lagged["skipped_steps"] == 1  # the previous step's snapshot
    assert scaler.stats()["skipped_steps"] == 2
    assert detector.check(lagged) is not None  # which already triggers the ladder at patience 1
