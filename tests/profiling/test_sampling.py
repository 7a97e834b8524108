"""Cheap samples: process memory with and without psutil, device facts, compiled-graph counter."""

from __future__ import annotations

import builtins

import pytest
import torch

from lightning_optkit.profiling import sampling


def test_rss_from_an_open_statm_matches_psutil() -> None:
    psutil = pytest.importorskip("psutil")
    value = sampling.process_rss_bytes()
    descriptor = sampling._STATM
    assert isinstance(value, int) and value > 10 * 2**20
    assert abs(value - psutil.Process().memory_info().rss) < 8 * 2**20
    kept = bytearray(64 * 2**20)
    kept[:: 4096] = b"\1" * len(kept[:: 4096])  # touch every page: resident
    assert sampling.process_rss_bytes() - value > 48 * 2**20  # re-read, not a stale copy
    assert sampling._STATM == descriptor  # the same descriptor, opened once


def test_rss_with_psutil_where_proc_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("psutil")

    def no_proc() -> int:
        raise FileNotFoundError("/proc/self/statm")

    monkeypatch.setattr(sampling, "_statm_rss", no_proc)
    value = sampling.process_rss_bytes()
    assert isinstance(value, int) and value > 10 * 2**20


def test_rss_without_proc_and_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_psutil(name: str, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    def no_proc() -> int:
        raise FileNotFoundError("/proc/self/statm")

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    monkeypatch.setattr(sampling, "_PROCESS", None)
    monkeypatch.setattr(sampling, "_statm_rss", no_proc)
    value = sampling.process_rss_bytes()  # the peak resident set size from ``resource``
    assert isinstance(value, int) and value > 10 * 2**20


def test_cpu_device_info_and_no_allocator() -> None:
    loader = torch.utils.data.DataLoader(list(range(4)), num_workers=0, pin_memory=False)
    info = sampling.device_info(torch.device("cpu"), "bf16-mixed", loader)
    assert (info.type, info.precision, info.num_workers, info.pin_memory) == ("cpu", "bf16-mixed", 0, False)
    assert info.total_memory and info.total_memory > 2**28
    assert sampling.allocator_memory(torch.device("cpu")) is None
    assert info.as_dict()["capability"] is None


def test_compiled_graph_counter_is_an_int() -> None:
    assert isinstance(sampling.compiled_graphs(), int)
