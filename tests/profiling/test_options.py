"""The bottleneck profiler's argument checks, without a Trainer: one ValueError naming the argument and a fix."""

from __future__ import annotations

from typing import Any

import pytest

from lightning_optkit.profiling.options import check_options

GOOD: dict[str, Any] = dict(filename="bottlenecks", formats=("json", "md", "html"), sample_every_n_steps=25,
                            sync_every_n_steps=200, timeline_points=96, warmup_steps=1, deep_window_steps=0,
                            deep_window_start=10, device_timing="auto", trace_max_mb=50.0, skip_empty_hooks=False)


@pytest.mark.parametrize("change", [{}, {"formats": ["html"]}, {"warmup_steps": 0}, {"skip_empty_hooks": False},
                                    {"device_timing": "off"}, {"trace_max_mb": 0.5}])
def test_good_settings_pass(change: dict[str, Any]) -> None:
    check_options(**{**GOOD, **change})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"timeline_points": 2.0}, r"timeline_points=2.0 is not allowed: expected an integer .*Fix: .*timeline_points=96"),
        ({"sync_every_n_steps": True}, r"sync_every_n_steps=True is not allowed"),
        ({"deep_window_start": "10"}, r"deep_window_start='10' is not allowed: expected an integer >= 0"),
        ({"formats": "json"}, r"formats='json' is not allowed: expected a non-empty list .*Fix: pass e.g. formats="),
        ({"formats": ["json", "htm"]}, r"formats\[1\]='htm' is not one of 'json', 'md', 'html'; did you mean "
                                       r"formats\[1\]='html'\?"),
        ({"filename": ""}, r"filename='' is not allowed: expected a plain file name"),
        ({"device_timing": "event"}, r"device_timing='event' is not one of .*did you mean device_timing='events'\?"),
        ({"trace_max_mb": float("nan")}, r"trace_max_mb=nan is not allowed"),
        ({"skip_empty_hooks": None}, r"skip_empty_hooks=None is not allowed: expected True or False"),
    ],
)
def test_bad_settings_name_the_argument_and_a_fix(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_options(**{**GOOD, **change})
