"""``@timed`` and ``@profiled``: time or profile every call of a function, plain or ``async``.

Both look up the process-wide monitor or profiler at each call, not when decorating, so a
module decorated at import time records wherever the singletons point when it runs (tests
swap them).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from ._common import MB, check_name
from .profiler import current_process

if TYPE_CHECKING:
    from .monitor import PerformanceMonitor
    from .profiler import ImageProcessingProfiler

__all__ = ["profiled", "timed"]

_F = TypeVar("_F", bound=Callable[..., Any])
# The clocks of the async profile, module attributes so tests can pin them.
_wall_clock = time.perf_counter
_cpu_clock = time.process_time


@overload
def timed(name: _F) -> _F: ...


@overload
def timed(name: str | None = None) -> Callable[[_F], _F]: ...


def timed(name: str | _F | None = None) -> _F | Callable[[_F], _F]:
    """Time every call of the decorated function into ``get_monitor()``, in seconds.

    >>> @timed
    ... def develop(): ...
    >>> @timed("curves.fit")
    ... async def fit(): ...

    A call that raises is recorded too (with the exception type in the metadata, as
    ``PerformanceMonitor.timer`` does) and the exception propagates.

    Args:
        name: the operation name; the function's ``__qualname__`` ("Curve.fit") when omitted.
            ``@timed`` works bare as well as called.

    Raises:
        ValueError: ``name`` is empty or not a string, or the function is a generator function
            (its call returns at once; time the code that consumes it).
    """
    return _decorator(name, _timed)


@overload
def profiled(name: _F) -> _F: ...


@overload
def profiled(name: str | None = None) -> Callable[[_F], _F]: ...


def profiled(name: str | _F | None = None) -> _F | Callable[[_F], _F]:
    """Profile every call (wall time, CPU time, memory) with ``get_profiler()``.

    >>> @profiled("negative.invert")
    ... def invert(image): ...

    A plain function runs inside ``profile_operation``: its profile joins the profiler's and
    its wall time the monitor's. For an ``async def`` function the awaited coroutine is
    measured the same way (without the peak memory, which other tasks share during the await)
    and handed to ``record_profile``. A call that raises is re-raised and adds a failed
    profile but no timing, as with ``profile_operation``. CPU time and memory are the process's, so
    work running alongside (other threads, other tasks during an await) is included.

    Args:
        name: the operation name; the function's ``__qualname__`` when omitted. ``@profiled``
            works bare as well as called.

    Raises:
        ValueError: ``name`` is empty or not a string, or the function is a generator function.
    """
    return _decorator(name, _profiled)


def _decorator(name: str | _F | None, build: Callable[[_F, str], _F]) -> _F | Callable[[_F], _F]:
    """Serve both ``@deco`` (the function arrives as ``name``) and ``@deco(...)``."""
    if callable(name):
        return build(name, _name_of(name))
    if name is not None:
        check_name("Operation", name)

    def decorate(func: _F) -> _F:
        qualname = _name_of(func)  # validates the function as well
        return build(func, name or qualname)

    return decorate


def _name_of(func: Callable[..., Any]) -> str:
    if not callable(func):
        raise ValueError(f"Only a function can be decorated, got {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise ValueError(
            f"{func.__qualname__} is a generator function: calling it only creates the "
            "generator, so time the code that consumes it instead"
        )
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _get_monitor() -> PerformanceMonitor:
    from . import get_monitor  # at call time: the package imports this module

    return get_monitor()


def _get_profiler() -> ImageProcessingProfiler:
    from . import get_profiler

    return get_profiler()


def _timed(func: _F, name: str) -> _F:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            with _get_monitor().timer(name):
                return await func(*args, **kwargs)

        return cast(_F, timed_async)

    @functools.wraps(func)
    def timed_sync(*args: Any, **kwargs: Any) -> Any:
        with _get_monitor().timer(name):
            return func(*args, **kwargs)

    return cast(_F, timed_sync)


def _profiled(func: _F, name: str) -> _F:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def profiled_async(*args: Any, **kwargs: Any) -> Any:
            profiler = _get_profiler()
            process = current_process()
            rss_before = process.memory_info().rss
            cpu_start = _cpu_clock()
            wall_start = _wall_clock()
            error: BaseException | None = None
            try:
                return await func(*args, **kwargs)
            except BaseException as exc:
                error = exc
                raise
            finally:
                profile: dict[str, Any] = {
                    "operation": name,
                    "success": error is None,
                    "wall_time_s": max(_wall_clock() - wall_start, 0.0),
                    "cpu_time_s": max(_cpu_clock() - cpu_start, 0.0),
                    "memory_delta_mb": (process.memory_info().rss - rss_before) / MB,
                    "peak_memory_mb": None,
                    "pixels": None,
                    "megapixels_per_s": None,
                }
                if error is not None:
                    profile["error"] = f"{type(error).__name__}: {error}"
                profiler.record_profile(profile)

        return cast(_F, profiled_async)

    @functools.wraps(func)
    def profiled_sync(*args: Any, **kwargs: Any) -> Any:
        # A partial, not (func, *args, **kwargs): the function's own ``image_size`` or
        # ``operation_name`` arguments must reach it, not profile_operation.
        result, _ = _get_profiler().profile_operation(
            functools.partial(func, *args, **kwargs), operation_name=name
        )
        return result

    return cast(_F, profiled_sync)
