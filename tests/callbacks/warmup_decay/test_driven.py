"""DrivenOptimizer on a plain torch optimizer: the LRs written, the counters, the metric names."""

from __future__ import annotations

import torch

from lightning_optkit.callbacks.warmup_decay.driven import DrivenOptimizer
from lightning_optkit.schedules import build_schedule
from lightning_optkit.schedules.plan import SchedulePlan
from lightning_optkit.schedules.spec import ScheduleSpec


def two_groups() -> torch.optim.Optimizer:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return torch.optim.AdamW([{"params": [a], "lr": 1e-2, "weight_decay": 0.1, "name": "body"},
                              {"params": [b], "lr": 3e-3, "weight_decay": 0.0}])


def test_apply_writes_each_groups_lr_and_weight_decay() -> None:
    plan = SchedulePlan.create(ScheduleSpec.create(warmup=2, decay="linear", min_lr_ratio=0.1))
    driven = DrivenOptimizer(index=0, optimizer=two_groups(), total=10)
    driven.add_groups(plan, steps_per_epoch=None)
    assert driven.names == ["body", "pg2"] and driven.base_lrs == [1e-2, 3e-3] and driven.warmups == [2, 2]
    sched = build_schedule(warmup_steps=2, total_steps=10, decay="linear", min_lr_ratio=0.1)
    for step in (0, 2, 9, 12):
        lrs = driven.apply(step, scale_weight_decay=True)
        assert lrs == [1e-2 * sched(step), 3e-3 * sched(step)]
        assert [g["lr"] for g in driven.optimizer.param_groups] == lrs
        assert driven.optimizer.param_groups[0]["weight_decay"] == 0.1 * sched(step)
    assert [g["initial_lr"] for g in driven.optimizer.param_groups] == [1e-2, 3e-3]
    assert driven.metrics([0.1, 0.2], numbered=False, with_wd=False) == {"lr-AdamW/body": 0.1, "lr-AdamW/pg2": 0.2}
    assert set(driven.metrics([0.1, 0.2], numbered=True, with_wd=True)) == {
        "lr-AdamW-0/body", "lr-AdamW-0/pg2", "wd-AdamW-0/body", "wd-AdamW-0/pg2"}
    assert [row["floor_lr"] for row in driven.rows()] == [1e-2 * 0.1, 3e-3 * 0.1]


def test_saved_base_lrs_win_and_late_groups_join_with_their_own_warmup() -> None:
    plan = SchedulePlan.create(ScheduleSpec.create(warmup=0, decay="constant"), late_group_warmup=3)
    optimizer = two_groups()
    driven = DrivenOptimizer(index=0, optimizer=optimizer, total=None)
    driven.add_groups(plan, steps_per_epoch=None, saved_lrs=[5e-2], saved_wds=[0.5])
    assert driven.base_lrs == [5e-2, 3e-3] and driven.base_wds == [0.5, 0.0]
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0})
    driven.add_groups(plan, steps_per_epoch=None, start=7)
    assert driven.warmups == [0, 0, 3]
    assert [driven.apply(s, scale_weight_decay=False)[2] for s in (7, 8, 10)] == [0.25, 0.5, 1.0]


def test_update_counts() -> None:
    driven = DrivenOptimizer(index=0, optimizer=two_groups(), total=10)
    assert driven.step_of(global_step=5, count="all", several=False) == 5
    driven.count_attempt()
    driven.count_attempt()
    assert driven.step_of(global_step=5, count="all", several=True) == 2
    assert driven.step_of(global_step=5, count="applied", several=False, skipped=2) == 3
    driven.count_applied_updates()
    driven.optimizer.step()
    assert driven.step_of(global_step=5, count="applied", several=False) == 1
    driven.release()
    driven.optimizer.step()
    assert driven.step_of(global_step=5, count="applied", several=True) == 1
    assert driven.first_log_of(4) and not driven.first_log_of(4) and driven.first_log_of(5)
