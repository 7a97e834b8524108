"""Device timers: the host backend on CPU, CUDA events read lazily (faked here) without waiting."""

from __future__ import annotations

from lightning_optkit.profiling.timers import SLOTS, CudaEventTimer, HostTimer, make_timer


class FakeEvent:
    """A CUDA event stand-in: the test decides when the GPU has passed it."""

    clock = 0.0

    def __init__(self) -> None:
        self.time: float | None = None
        self.done = False

    def record(self) -> None:
        self.time = FakeEvent.clock
        self.done = False

    def query(self) -> bool:
        return self.done

    def elapsed_time(self, other: "FakeEvent") -> float:
        assert self.done and other.done, "elapsed_time on an unfinished event would synchronise"
        return (other.time - self.time) * 1e3  # milliseconds


def test_host_timer_adds_intervals_to_the_open_slot() -> None:
    now = [0]
    timer = HostTimer(clock=lambda: now[0])
    for slot, ns in ((0, 3000), (1, 5000), (3, 2000), (-1, 7000), (0, 1000), (-1, 0)):
        timer.mark(slot)
        now[0] += ns
    totals = timer.totals()
    assert abs(totals["forward"] - 4000e-9) < 1e-15 and abs(totals["backward"] - 5000e-9) < 1e-15
    assert abs(totals["optimizer_step"] - 2000e-9) < 1e-15 and totals["between"] == 0.0
    assert list(totals) == list(SLOTS)


def test_cuda_timer_reads_only_completed_events() -> None:
    timer = CudaEventTimer(capacity=8, event_factory=FakeEvent)
    marks = [(0, 0.001), (1, 0.002), (3, 0.0005), (-1, 0.0)]
    for slot, seconds in marks:
        timer.mark(slot)
        FakeEvent.clock += seconds
    timer.poll()  # the GPU has not reached any event yet: nothing read, nothing waited for
    assert timer.totals()["forward"] == 0.0
    for event in timer.events[:2]:
        event.done = True
    timer.poll()
    assert abs(timer.totals()["forward"] - 0.001) < 1e-12 and timer.totals()["backward"] == 0.0
    for event in timer.events[:4]:
        event.done = True
    timer.poll()
    totals = timer.totals()
    assert abs(totals["backward"] - 0.002) < 1e-12 and abs(totals["optimizer_step"] - 0.0005) < 1e-12


def test_cuda_timer_drops_marks_when_the_gpu_lags_instead_of_waiting() -> None:
    timer = CudaEventTimer(capacity=4, event_factory=FakeEvent)
    for _ in range(6):
        timer.mark(0)
    assert timer.dropped == 2
    for event in timer.events:
        event.done = True
    timer.poll()
    timer.mark(1)
    assert timer.dropped == 2


def test_backend_choice() -> None:
    assert make_timer("cpu") is None  # the host phase times are the device times
    assert isinstance(make_timer("cpu", "host"), HostTimer)
    assert make_timer("cuda", "off") is None
    assert isinstance(make_timer("cuda", "host"), HostTimer)
