"""Durations: what a user may write for a warm-up or a total, and the steps it resolves to."""

from __future__ import annotations

import pytest

from lightning_optkit.schedules.durations import Duration, parse_duration, resolve_duration


def steps(value, *, total=None, steps_per_epoch=None) -> int:
    return resolve_duration(parse_duration(value), total=total, steps_per_epoch=steps_per_epoch)


@pytest.mark.parametrize(
    ("value", "parsed", "shown"),
    [
        ("5%", Duration("fraction", 0.05), "5%"),
        ("3ep", Duration("epochs", 3.0), "3ep"),
        ("500st", Duration("steps", 500.0), "500st"),
        ("0.5ep", Duration("epochs", 0.5), "0.5ep"),
        (" 12 steps ", Duration("steps", 12.0), "12st"),
        ("2 epochs", Duration("epochs", 2.0), "2ep"),
        (500, Duration("steps", 500.0), "500st"),
        (0, Duration("steps", 0.0), "0st"),
        (0.05, Duration("fraction", 0.05), "5%"),
        ("500", Duration("steps", 500.0), "500st"),
        ("0.05", Duration("fraction", 0.05), "5%"),
        ("100%", Duration("fraction", 1.0), "100%"),
    ],
)
def test_parse_and_show(value, parsed, shown) -> None:
    assert parse_duration(value) == parsed
    assert str(parse_duration(value)) == shown


def test_resolve_against_a_horizon() -> None:
    assert steps("5%", total=200) == 10
    assert steps("5%", total=30) == 2  # 1.5 rounds up, as Hugging Face does for a fractional warm-up
    assert steps(0.1, total=30) == 3  # 0.1 * 30 = 3.0000000000000004 still gives 3
    assert steps("3ep", steps_per_epoch=23) == 69
    assert steps("0.5ep", steps_per_epoch=7) == 4
    assert steps("500st") == 500
    assert steps("500st", total=100, steps_per_epoch=7) == 500  # steps ignore the horizon
    assert steps("100%", total=37) == 37


def test_unknown_horizon_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"warmup=5% is a share of the run.s length, which is unknown"):
        resolve_duration(parse_duration("5%"), total=None, steps_per_epoch=10, name="warmup")
    with pytest.raises(ValueError, match=r"total=3ep is in epochs, but the steps per epoch are unknown"):
        resolve_duration(parse_duration("3ep"), total=100, steps_per_epoch=None, name="total")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-1, r"warmup=-1 is negative"),
        (True, r"warmup=True is not a duration"),
        (1.5, r"warmup=1.5 is a float >= 1"),
        (10.0, r"write the int 10"),
        (float("nan"), r"warmup=nan must be a finite number"),
        ("five", r"warmup='five' does not parse"),
        ("2.5st", r"steps must be a whole number"),
        ("150%", r"more than 100%"),
        ([5], r"of type list is not a duration"),
    ],
)
def test_bad_durations(value, match) -> None:
    with pytest.raises(ValueError, match=match):
        parse_duration(value, name="warmup")
