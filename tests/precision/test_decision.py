"""The decision table under mocked hardware, rank agreement and the measured choice (pure)."""

from __future__ import annotations

import json
import math
from unittest import mock

import pytest
import torch

from lightning_optkit.precision import hardware
from lightning_optkit.precision.decision import (
    Decision,
    Measurement,
    check_fixed_mode,
    choose_measured,
    decide,
    fallback_target,
    merge_rank_candidates,
    merge_rank_measurements,
    rule_candidates,
)
from lightning_optkit.precision.hardware import HardwareFacts, probe_hardware
from tests.helpers.precision_models import CPU_AVX2, CPU_BF16, cuda_facts


def _cuda(capability: tuple[int, int]) -> HardwareFacts:
    with mock.patch("torch.cuda.is_available", return_value=True), \
            mock.patch("torch.cuda.get_device_capability", return_value=capability):
        return probe_hardware("cuda:0")


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((6, 1), ["32-true"]),
        ((7, 0), ["16-mixed", "32-true"]),
        ((7, 5), ["16-mixed", "32-true"]),
        ((8, 0), ["bf16-mixed", "32-true"]),
        ((9, 0), ["bf16-mixed", "32-true"]),
    ],
)
def test_cuda_table_from_mocked_capability(capability, expected):
    facts = _cuda(capability)
    assert facts.device_type == "cuda"
    assert facts.cuda_capability == capability
    assert [c.precision for c in rule_candidates(facts)] == expected
    # T4/V100 report bf16 "supported" through emulation: the rule must not pick it
    assert facts.native_bf16 is (capability >= (8, 0))


def test_cuda_probe_does_not_use_is_bf16_supported():
    with mock.patch("torch.cuda.is_bf16_supported", side_effect=AssertionError("must not be called")):
        facts = _cuda((7, 5))
    assert rule_candidates(facts)[0].precision == "16-mixed"


@pytest.mark.parametrize(
    ("flags", "expected", "amx"),
    [
        (frozenset({"avx2", "fma"}), ["32-true"], False),
        (frozenset({"avx2", "avx512f", "avx512bw"}), ["32-true"], False),  # AVX512 without BF16
        (frozenset({"avx512f", "avx512_bf16"}), ["bf16-mixed", "32-true"], False),
        (frozenset({"avx512f", "amx_bf16", "amx_tile"}), ["bf16-mixed", "32-true"], True),
    ],
)
def test_cpu_table_from_mocked_flags(flags, expected, amx):
    with mock.patch.object(hardware, "cpu_flags", return_value=flags):
        facts = probe_hardware("cpu")
    assert facts.device_type == "cpu"
    assert facts.cpu_amx is amx
    assert [c.precision for c in rule_candidates(facts)] == expected


def test_cpu_without_flag_list_needs_avx512_and_onednn():
    with mock.patch.object(hardware, "cpu_flags", return_value=frozenset()), \
            mock.patch("torch.backends.cpu.get_cpu_capability", return_value="AVX2"):
        facts = probe_hardware("cpu")
    assert not facts.cpu_bf16_native
    assert facts.notes


def test_other_accelerators_get_fp32():
    facts = HardwareFacts(device_type="mps", device_name="mps")
    [only] = rule_candidates(facts)
    assert only.precision == "32-true"
    assert "mps" in only.reason


def test_cuda_device_without_cuda_is_an_error():
    with mock.patch("torch.cuda.is_available", return_value=False), \
            pytest.raises(ValueError, match="CUDA is not available"):
        probe_hardware("cuda")


def test_every_candidate_has_a_reason_and_fp32_last():
    for facts in (CPU_AVX2, CPU_BF16, *(cuda_facts(*c) for c in [(6, 1), (7, 0), (8, 6), (9, 0)])):
        cands = rule_candidates(facts)
        assert cands[-1].precision == "32-true"
        assert all(c.reason for c in cands)


# ---------------------------------------------------------------- fixed modes against hardware
def test_fixed_fp16_on_hardware_without_fp16_is_an_error():
    xla = HardwareFacts(device_type="xla", device_name="tpu", fp16_runs=False)
    with pytest.raises(ValueError, match="mode='16-mixed' cannot run on xla"):
        check_fixed_mode("16-mixed", xla)
    old = cuda_facts(5, 0)
    old = HardwareFacts(**{**old.__dict__, "fp16_runs": False})
    with pytest.raises(ValueError, match="16-mixed"):
        check_fixed_mode("16-mixed", old)


def test_fixed_modes_that_run_slowly_warn():
    assert any("emulated" in w for w in check_fixed_mode("bf16-mixed", cuda_facts(7, 5)))
    assert any("emulated" in w for w in check_fixed_mode("bf16-mixed", CPU_AVX2))
    assert any("slower than 32-true" in w for w in check_fixed_mode("16-mixed", CPU_AVX2))
    assert check_fixed_mode("bf16-mixed", cuda_facts(8, 0)) == []
    assert check_fixed_mode("16-mixed", cuda_facts(7, 0)) == []
    assert check_fixed_mode("32-true", CPU_AVX2) == []


def test_bf16_where_it_cannot_run_is_an_error():
    with pytest.raises(ValueError, match="mode='bf16-mixed' cannot run"):
        check_fixed_mode("bf16-mixed", cuda_facts(5, 2))


# ---------------------------------------------------------------- ranks
def test_two_ranks_that_differ_use_the_lowest_common_precision():
    a100, t4 = rule_candidates(cuda_facts(8, 0)), rule_candidates(cuda_facts(7, 5))
    assert merge_rank_candidates([[c.precision for c in a100], [c.precision for c in t4]]) == ["32-true"]
    amx, avx2 = rule_candidates(CPU_BF16), rule_candidates(CPU_AVX2)
    assert merge_rank_candidates([[c.precision for c in amx], [c.precision for c in avx2]]) == ["32-true"]
    both = [["bf16-mixed", "32-true"], ["bf16-mixed", "32-true"]]
    assert merge_rank_candidates(both) == ["bf16-mixed", "32-true"]
    assert merge_rank_candidates([["16-mixed", "bf16-mixed", "32-true"], ["16-mixed", "32-true"]]) == \
        ["16-mixed", "32-true"]


def test_rank_measurements_take_the_slowest_and_all_finite():
    a = {"bf16-mixed": Measurement("bf16-mixed", 5.0, 6, True), "32-true": Measurement("32-true", 9.0, 6, True)}
    b = {"bf16-mixed": Measurement("bf16-mixed", 11.0, 5, False), "32-true": Measurement("32-true", 8.0, 6, True)}
    merged = merge_rank_measurements([a, b])
    assert merged["bf16-mixed"] == Measurement("bf16-mixed", 11.0, 5, False)
    assert merged["32-true"] == Measurement("32-true", 9.0, 6, True)
    assert choose_measured(["bf16-mixed", "32-true"], merged)[0] == "32-true"


# ---------------------------------------------------------------- the measured choice
def _m(name: str, ms: float, finite: bool = True, steps: int = 6) -> Measurement:
    return Measurement(name, ms, steps, finite)


def test_fastest_finite_candidate_wins():
    names = ["bf16-mixed", "32-true"]
    choice, reasons = choose_measured(names, {"bf16-mixed": _m("bf16-mixed", 5.0), "32-true": _m("32-true", 10.0)})
    assert choice == "bf16-mixed"
    assert reasons[-1] == "fastest with finite loss: bf16-mixed"


def test_near_tie_keeps_fp32():
    names = ["bf16-mixed", "32-true"]
    choice, reasons = choose_measured(names, {"bf16-mixed": _m("bf16-mixed", 9.8), "32-true": _m("32-true", 10.0)},
                                      margin=0.03)
    assert choice == "32-true"
    assert "not faster than 32-true by 3%" in reasons[-1]


def test_slower_half_precision_is_never_kept():
    # the AVX2 situation: bf16 emulated, many times slower
    choice, _ = choose_measured(["bf16-mixed", "32-true"],
                                {"bf16-mixed": _m("bf16-mixed", 164.0), "32-true": _m("32-true", 8.8)})
    assert choice == "32-true"


def test_non_finite_or_unmeasured_candidates_are_rejected():
    names = ["16-mixed", "32-true"]
    choice, reasons = choose_measured(names, {"16-mixed": _m("16-mixed", 1.0, finite=False),
                                              "32-true": _m("32-true", 10.0)})
    assert choice == "32-true"
    assert "rejected, non-finite loss" in reasons[0]
    choice, reasons = choose_measured(names, {"16-mixed": _m("16-mixed", math.nan, steps=0)})
    assert choice == "32-true"
    assert reasons[-1] == "no candidate measured: 32-true"


def test_fallback_ladder_targets():
    assert fallback_target("16-mixed", cuda_facts(8, 0)) == "bf16-mixed"
    assert fallback_target("16-mixed", cuda_facts(7, 5)) == "32-true"
    assert fallback_target("16-mixed", CPU_BF16) == "bf16-mixed"
    assert fallback_target("16-mixed", CPU_AVX2) == "32-true"
    assert fallback_target("bf16-mixed", CPU_BF16) == "32-true"


# ---------------------------------------------------------------- the record
def test_decision_round_trips_through_a_dict_and_json():
    decision = Decision(mode="auto", precision="bf16-mixed", source="probe",
                        candidates=["bf16-mixed", "32-true"], reasons=["a", "b"],
                        measurements={"bf16-mixed": {"median_ms": 1.5, "steps": 6, "finite": True}},
                        hardware=CPU_BF16.to_dict(),
                        fallbacks=[{"step": 3, "from": "16-mixed", "to": "32-true", "reason": "r"}],
                        world_size=2)
    data = json.loads(json.dumps(decision.to_dict()))
    assert Decision.from_dict(data) == decision
    assert HardwareFacts.from_dict(data["hardware"]) == CPU_BF16
    assert Decision.from_dict({"precision": "32-true", "unknown": 1}).precision == "32-true"
    assert "bf16-mixed" in decision.summary() and "fell back 16-mixed -> 32-true" in decision.summary()
    assert decision.hparams()["auto_precision/precision"] == "bf16-mixed"
    assert decision.headline() == "bf16-mixed (probe; per step: bf16-mixed 1.50 ms; fell back 16-mixed -> 32-true at step 3)"
    assert Decision.from_dict(decision.record()) == decision


def test_real_cpu_facts_are_consistent():
    facts = probe_hardware("cpu")
    assert facts.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert facts.native_bf16 is facts.cpu_bf16_native


@pytest.mark.parametrize(
    ("facts", "mode", "precision", "source"),
    [
        (CPU_AVX2, "auto", "32-true", "rule"),
        (CPU_BF16, "auto", "bf16-mixed", "rule"),
        (cuda_facts(7, 5), "auto", "16-mixed", "rule"),
        (cuda_facts(6, 1), "auto", "32-true", "rule"),
        (cuda_facts(9, 0), "auto", "bf16-mixed", "rule"),
        (CPU_AVX2, "16-mixed", "16-mixed", "fixed"),
    ],
)
def test_decide_from_facts(facts, mode, precision, source):
    decision = decide(facts, mode)
    assert (decision.precision, decision.source) == (precision, source)
    assert decision["precision"] == precision and decision.reasons
    assert Decision.from_dict(decision.to_dict()) == decision


def test_decide_with_measurements_and_agreed_candidates():
    measured = {"bf16-mixed": _m("bf16-mixed", 20.0), "32-true": _m("32-true", 10.0)}
    decision = decide(CPU_BF16, measurements=measured)
    assert decision.precision == "32-true" and decision.source == "probe"
    assert decision.measurements["bf16-mixed"] == {"median_ms": 20.0, "steps": 6, "finite": True}
    assert decide(CPU_BF16, candidates=["32-true"], world_size=2).precision == "32-true"
    with pytest.raises(ValueError, match="mode='fp8'"):
        decide(CPU_BF16, "fp8")
    with pytest.raises(KeyError):
        decision["nope"]
