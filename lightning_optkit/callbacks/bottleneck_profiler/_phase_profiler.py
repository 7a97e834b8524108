"""A Lightning ``Profiler`` that feeds a :class:`PhaseAccountant` and forwards to the user's profiler."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.profilers import PassThroughProfiler, Profiler
from typing_extensions import override

from lightning_optkit.profiling.accounting import BatchMarkContext, PhaseAccountant

__all__ = ["PhaseProfiler"]


class _Action:
    """A reusable context manager for one action name (cheaper than a generator context)."""

    __slots__ = ("_start", "_stop", "_name")

    def __init__(self, profiler: PhaseProfiler, name: str) -> None:
        self._start = profiler.start
        self._stop = profiler.stop
        self._name = name

    def __enter__(self) -> str:
        self._start(self._name)
        return self._name

    def __exit__(self, *exc: Any) -> None:
        self._stop(self._name)


class _Quiet:
    """The context of an action that is not timed on its own (two empty calls, nothing else)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_QUIET = _Quiet()


class _Contexts(dict):
    """Action name -> its reusable context; looked up in C, built in Python only on first use."""

    def __init__(self, profiler: PhaseProfiler) -> None:
        super().__init__()
        self._profiler = profiler

    def __missing__(self, name: str) -> Any:
        profiler = self._profiler
        context: Any = None
        if not profiler.forwards:
            # nothing to forward: a quiet action costs two empty calls, a timed one its accounting
            accountant = profiler.accountant
            if accountant.is_transparent(name):
                context = _QUIET
            elif accountant.is_batch_mark(name):
                context = BatchMarkContext(accountant)
            else:
                context = accountant.context(name)
        if context is None:
            context = _Action(profiler, name)
        self[name] = context
        return context


class PhaseProfiler(Profiler):
    """Times every action Lightning names, then hands the call on to ``inner``.

    Args:
        accountant: Receives the start/stop events.
        inner: The profiler the user set on the Trainer (``None`` or a pass-through is skipped).
    """

    def __init__(self, accountant: PhaseAccountant, inner: Profiler | None = None) -> None:
        super().__init__(dirpath=getattr(inner, "dirpath", None), filename=getattr(inner, "filename", None))
        self.accountant = accountant
        self.inner = inner
        self._contexts = _Contexts(self)
        forward = inner is not None and not isinstance(inner, PassThroughProfiler)
        self.forwards = forward
        self._inner_uses_context = forward and type(inner).profile is not Profiler.profile
        if not forward:
            # no one to forward to: bind the accountant directly (one call per event)
            self.start = accountant.start  # type: ignore[method-assign]
            self.stop = accountant.stop  # type: ignore[method-assign]
        self._open: dict[str, list[Any]] = {}
        # ``trainer.profiler.profile(name)`` runs for every hook of every step: a dict lookup in C
        self.profile = self._contexts.__getitem__  # type: ignore[method-assign]

    @override
    def start(self, action_name: str) -> None:
        self.accountant.start(action_name)
        if self._inner_uses_context:
            context = self.inner.profile(action_name)  # type: ignore[union-attr]
            context.__enter__()
            self._open.setdefault(action_name, []).append(context)
        else:
            self.inner.start(action_name)  # type: ignore[union-attr]

    @override
    def stop(self, action_name: str) -> None:
        if self._inner_uses_context:
            opened = self._open.get(action_name)
            if opened:
                opened.pop().__exit__(None, None, None)
        else:
            self.inner.stop(action_name)  # type: ignore[union-attr]
        self.accountant.stop(action_name)

    @override
    def profile(self, action_name: str) -> Any:
        """The reusable context of ``action_name`` (replaced on the instance by the dict look-up itself)."""
        return self._contexts[action_name]

    @override
    def summary(self) -> str:
        return self.inner.summary() if self.inner is not None else ""

    @override
    def describe(self) -> None:
        if self.inner is not None:
            self.inner.describe()

    @override
    def setup(self, stage: str, local_rank: int | None = None, log_dir: str | None = None) -> None:
        super().setup(stage, local_rank, log_dir)
        if self.inner is not None:
            self.inner.setup(stage, local_rank, log_dir)

    @override
    def teardown(self, stage: str | None) -> None:
        if self.inner is not None:
            self.inner.teardown(stage)

    @override
    def __del__(self) -> None:
        pass
