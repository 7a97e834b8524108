"""The examples in the schedules docstrings run, and every shape documents its anchor mapping."""

from __future__ import annotations

import doctest
import importlib

import pytest

from lightning_optkit.schedules import get_shape, list_shapes

MODULES = ["lightning_optkit.schedules", "lightning_optkit.schedules.schedule"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("compat", "name"), [(c, n) for c in ("hf", "timm") for n in list_shapes(c)])
def test_compat_shapes_name_their_anchor(compat, name):
    doc = get_shape(name, compat).fn.__doc__ or ""
    anchor = "get_" if compat == "hf" else "CosineLRScheduler"
    assert anchor in doc


@pytest.mark.parametrize("name", list_shapes())
def test_default_shapes_have_a_summary(name):
    assert get_shape(name).summary and not get_shape(name).summary.startswith(name + "(")
