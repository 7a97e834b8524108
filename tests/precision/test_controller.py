"""PrecisionController without a Trainer: fake rank gathers and a list as the publisher."""

from __future__ import annotations

import pickle

import pytest

from lightning_optkit.precision.controller import PrecisionController
from lightning_optkit.precision.decision import PRECISIONS, Decision
from lightning_optkit.precision.hardware import HardwareFacts
from lightning_optkit.precision.options import FallbackPolicy, ProbePlan
from tests.helpers.precision_models import CPU_AVX2, CPU_BF16, cuda_facts

QUICK = ProbePlan(warmup_steps=1, steps=2, rounds=1, reject_factor=1e9)


class Ranks:
    """A fake all-gather: this rank's row followed by the other ranks' rows from ``answer(row)``."""

    def __init__(self, answer=None) -> None:
        self.answer = answer or (lambda row: [])
        self.sent: list[list[float]] = []

    def __call__(self, row: list[float]) -> list[list[float]]:
        self.sent.append(list(row))
        return [list(row), *self.answer(row)]


def _controller(mode="auto", facts=CPU_BF16, gather=None, **kwargs):
    published: list[dict] = []
    controller = PrecisionController(mode, gather=gather or Ranks(), publish=lambda d: published.append(d.to_dict()),
                                     **kwargs)
    controller.set_hardware(facts)
    return controller, published


def _run_probe(controller: PrecisionController, ms: dict[str, float], finite=lambda name: True) -> list[str]:
    ran = []
    while controller.probing:
        name = controller.precision
        ran.append(name)
        controller.record_step(ms[name] / 1000.0, finite(name))
    return ran


def test_fixed_mode_is_used_as_given_and_published_once():
    controller = PrecisionController("16-mixed", publish=lambda d: None)
    assert controller.precision == "16-mixed"  # known before setup
    warnings = controller.set_hardware(CPU_AVX2)
    assert warnings and "without native fp16" in warnings[0]
    controller, published = _controller("16-mixed", facts=CPU_AVX2)
    assert controller.start() == "16-mixed" and not controller.probing
    assert controller.decision.source == "fixed" and controller.decision.candidates == ["16-mixed"]
    assert len(published) == 1 and published[0]["precision"] == "16-mixed"


def test_a_fixed_mode_the_hardware_cannot_run_fails_and_start_needs_the_facts():
    no_fp16 = HardwareFacts(device_type="xla", device_name="xla:0", fp16_runs=False)
    with pytest.raises(ValueError, match=r"mode='16-mixed' cannot run on xla \(xla:0\)"):
        PrecisionController("16-mixed").set_hardware(no_fp16)
    with pytest.raises(ValueError, match=r"mode='fp16' is not one of"):
        PrecisionController("fp16")
    with pytest.raises(RuntimeError, match=r"set_hardware"):
        PrecisionController().start()


def test_a_restored_decision_is_kept_without_a_probe():
    saved = Decision("auto", "bf16-mixed", "probe", ["bf16-mixed", "32-true"], ["measured"],
                     {"bf16-mixed": {"median_ms": 1.0, "steps": 2, "finite": True}})
    controller, published = _controller(plan=QUICK)
    controller.restore(saved.to_dict())
    assert controller.start() == "bf16-mixed" and not controller.probing
    assert controller.decision.resumed and controller.decision.reasons == ["measured"]
    assert [p["resumed"] for p in published] == [True]


def test_a_restored_decision_is_made_anew_where_it_does_not_fit():
    controller, _ = _controller(facts=CPU_AVX2)
    controller.restore(Decision("auto", "bf16-mixed", "rule", ["bf16-mixed", "32-true"]))
    assert controller.start() == "32-true" and not controller.decision.resumed
    assert "not plausible on this hardware" in controller.decision.reasons[-1]
    # another mode's decision or a probe that never finished is not reused either
    for restored in (Decision("16-mixed", "16-mixed", "fixed"), Decision("auto", "bf16-mixed", "pending")):
        controller, _ = _controller(probe=False)
        controller.restore(restored)
        controller.start()
        assert not controller.decision.resumed and controller.decision.source == "rule"


def test_every_rank_must_be_able_to_keep_a_restored_decision():
    ranks = Ranks(lambda row: [[0.0]])  # the other rank cannot run it fast
    controller, _ = _controller(gather=ranks, probe=False)
    controller.restore(Decision("auto", "bf16-mixed", "rule", ["bf16-mixed", "32-true"]))
    controller.start(world_size=2)
    assert ranks.sent[0] == [1.0] and not controller.decision.resumed


def test_rules_only_decisions_say_why_there_was_no_probe():
    controller, published = _controller(facts=CPU_AVX2)
    assert controller.start() == "32-true" and controller.decision.source == "rule"
    assert len(published) == 1
    # on a CPU, bf16 can lose to fp32 depending on the model: unmeasured, the reference is kept
    controller, _ = _controller(probe=False)
    assert controller.start() == "32-true"
    assert controller.decision.reasons[-1] == ("no probe (probe=False): 32-true kept, since bf16 on a CPU can be "
                                               "slower and was not measured")
    controller, _ = _controller()
    assert controller.start(can_probe=False) == "32-true"
    assert "the probe needs fit, automatic optimization and one optimizer" in controller.decision.reasons[-1]
    controller, _ = _controller()
    assert controller.start(fitting=False) == "32-true" and not controller.probing
    # on a GPU the rule is decisive (tensor cores): no probe, bf16
    controller, _ = _controller(facts=cuda_facts(9, 0))
    assert controller.start(can_probe=False) == "bf16-mixed"


def test_deterministic_runs_decide_by_rule_alone():
    for _ in range(2):
        controller, published = _controller()
        assert controller.start(deterministic=True) == "32-true" and not controller.probing
        assert controller.decision.source == "rule" and len(published) == 1
        assert "deterministic=True" in controller.decision.reasons[-1]


def test_a_decisive_rule_skips_the_probe_on_tensor_core_gpus():
    for capability in ((8, 0), (9, 0), (10, 0)):
        controller, published = _controller(facts=cuda_facts(*capability))
        assert controller.start() == "bf16-mixed" and not controller.probing and len(published) == 1
        assert controller.decision.reasons[-1] == "no probe: the hardware alone settles bf16-mixed (wide margin over 32-true)"
    # fp16 on 7.x still measures: its loss may overflow, which only a probe sees
    controller, _ = _controller(facts=cuda_facts(7, 5))
    assert controller.start() == "32-true" and controller.probing


def test_an_excluded_precision_is_never_a_candidate():
    controller, _ = _controller(facts=cuda_facts(7, 5))
    controller.exclude("16-mixed", "LBFGS cannot use loss scaling: 16-mixed excluded")
    assert controller.start() == "32-true" and not controller.probing
    assert controller.decision.candidates == ["32-true"]
    assert "LBFGS cannot use loss scaling: 16-mixed excluded" in controller.decision.reasons


def test_the_probe_fed_measurements_ends_in_the_measured_choice():
    controller, published = _controller(plan=QUICK)
    assert controller.start() == "32-true"  # the reference runs first
    assert controller.probing and controller.decision.source == "pending" and published == []
    ran = _run_probe(controller, {"32-true": 10.0, "bf16-mixed": 5.0})
    assert ran == ["32-true"] * 3 + ["bf16-mixed"] * 3
    decision = controller.decision
    assert controller.precision == decision.precision == "bf16-mixed" and decision.source == "probe"
    assert decision.measurements["32-true"] == {"median_ms": pytest.approx(10.0), "steps": 2, "finite": True}
    assert decision.reasons[-1] == "fastest with finite loss: bf16-mixed"
    assert [p["source"] for p in published] == ["probe"]


def test_half_precision_must_beat_fp32_by_the_margin():
    controller, _ = _controller(plan=ProbePlan(warmup_steps=1, steps=2, rounds=1, margin=0.2, reject_factor=1e9))
    controller.start()
    _run_probe(controller, {"32-true": 10.0, "bf16-mixed": 9.0})
    assert controller.precision == "32-true"
    assert "not faster than 32-true by 20%" in controller.decision.reasons[-1]


def test_the_end_of_the_run_cuts_the_probe_short():
    controller, published = _controller(plan=QUICK)
    controller.start()
    controller.record_step(0.01, True)
    assert controller.finish_probe(collective=False) == "32-true"
    assert controller.decision.reasons[2].startswith("probe cut short after 1 of 6 steps")
    assert len(published) == 1 and not controller.probing
    # several processes: no collective at the end of the run, the current precision is kept
    controller, _ = _controller(plan=QUICK, gather=Ranks(lambda row: [list(row)]))
    controller.start(world_size=2)
    for _ in range(3):
        controller.record_step(0.01, True)
    assert controller.precision == "bf16-mixed"
    assert controller.finish_probe(collective=False) == "bf16-mixed"
    assert controller.decision.reasons[-1] == "probe cut short by the end of the run"


def test_two_ranks_that_disagree_keep_the_common_candidates():
    other = [1.0 if p == "32-true" else 0.0 for p in PRECISIONS]  # the other rank has no native bf16
    ranks = Ranks(lambda row: [other])
    controller, published = _controller(gather=ranks)
    assert controller.start(world_size=2) == "32-true" and not controller.probing
    assert ranks.sent == [[1.0, 0.0, 1.0]]
    decision = controller.decision
    assert decision.candidates == ["32-true"] and decision.world_size == 2
    assert any("ranks agreed on the common candidates ['32-true']" in r for r in decision.reasons)
    assert len(published) == 1


def test_no_collective_outside_fit():
    ranks = Ranks(lambda row: pytest.fail("no collective when only validating"))
    controller, _ = _controller(gather=ranks)
    assert controller.start(world_size=2, fitting=False) == "32-true"


def test_ranks_merge_their_probe_measurements():
    def other(row):
        if len(row) == len(PRECISIONS):
            return [list(row)]  # the same candidates
        theirs = list(row)
        theirs[2] = 0.0  # the other rank saw a non-finite bf16 loss
        return [theirs]

    controller, _ = _controller(plan=QUICK, gather=Ranks(other))
    controller.start(world_size=2)
    assert controller.recorder is not None and not controller.recorder.reject_early
    _run_probe(controller, {"32-true": 10.0, "bf16-mixed": 5.0})
    assert controller.precision == "32-true"
    assert controller.decision.measurements["bf16-mixed"]["finite"] is False


def _collapsed(steps: int = 5) -> dict:
    return {"scale": 1.0, "steps": steps, "skipped_steps": steps, "floor_streak": steps, "consecutive_skips": steps}


def test_fp16_falls_back_to_native_bf16_when_scaling_collapses():
    controller, published = _controller("16-mixed", fallback=FallbackPolicy(patience=3))
    controller.start()
    assert controller.watch(_collapsed(2), step=2) is None
    warning = controller.watch(_collapsed(3), step=3)
    assert warning is not None and "switching 16-mixed -> bf16-mixed after step 3" in warning
    assert controller.precision == "bf16-mixed"
    decision = controller.decision
    assert (decision.precision, decision.source) == ("bf16-mixed", "fallback")
    assert decision.fallbacks == [{"step": 3, "from": "16-mixed", "to": "bf16-mixed",
                                   "reason": "3 consecutive skipped steps at the minimum loss scale 1 "
                                             "(fallback_policy.patience=3)"}]
    assert [p["source"] for p in published] == ["fixed", "fallback"]


def test_the_fallback_target_is_agreed_across_ranks_and_can_be_switched_off():
    ranks = Ranks(lambda row: [[0.0] * len(row)])  # the other rank has no native bf16
    controller, _ = _controller("16-mixed", gather=ranks, fallback=FallbackPolicy(patience=1))
    controller.start(world_size=2)
    assert "-> 32-true" in controller.watch(_collapsed(), step=7)
    assert ranks.sent == [[1.0]] and controller.precision == "32-true"
    quiet, _ = _controller("16-mixed", fallback=None)
    quiet.start()
    assert quiet.watch(_collapsed(100), step=100) is None and quiet.precision == "16-mixed"


def test_the_controller_pickles_with_plain_callables():
    controller = PrecisionController("auto", plan=QUICK)
    controller.set_hardware(CPU_BF16)
    controller.start()
    clone = pickle.loads(pickle.dumps(controller))
    assert clone.probing and clone.precision == "32-true" and clone.decision == controller.decision
