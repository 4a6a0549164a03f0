"""The one set of at-fork hooks: what a fork waits for, and what a forked child renews.

A child inherits every lock in the state the fork found it, held by a parent thread that does
not exist in the child, and every buffer of samples that are the parent's to write. Objects
with such state register here (weakly) and implement ``_after_fork()``: renew their own locks,
then forget what is the parent's. Because each renews its own locks first and none calls
another, the order they run in does not matter. Objects that start threads (the flusher)
implement ``_resume_after_fork()`` too, called once every object is renewed, so a new thread
can never meet a lock that a parent thread held.

Objects whose work must not be cut in half by a fork (a write transaction: the child would
inherit a connection inside it) implement ``_before_fork()`` and ``_after_fork_in_parent()``,
called in registration order and its reverse (the flusher's lock before any store's).
"""

from __future__ import annotations

import itertools
import logging
import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "on_fork"]

logger = logging.getLogger(__name__)


class ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_order = itertools.count()
_objects: dict[int, weakref.ref[ForkAware]] = {}


def on_fork(obj: ForkAware) -> None:
    """Call ``obj``'s fork hooks in every fork while ``obj`` lives."""
    key = next(_order)
    _objects[key] = weakref.ref(obj, lambda _: _objects.pop(key, None))


def _live() -> list[ForkAware]:
    return [obj for ref in list(_objects.values()) if (obj := ref()) is not None]


def _call(objects: list[ForkAware], method: str) -> None:
    for obj in objects:
        hook = getattr(obj, method, None)
        if hook is not None:
            try:
                hook()
            except Exception:  # one object's bug must not leave the others un-renewed
                logger.exception("ptpd-monitor: %s of %r failed at a fork", method, obj)


def _before() -> None:
    _call(_live(), "_before_fork")


def _in_parent() -> None:
    _call(list(reversed(_live())), "_after_fork_in_parent")


def _in_child() -> None:
    objects = _live()
    _call(objects, "_after_fork")
    _call(objects, "_resume_after_fork")


os.register_at_fork(before=_before, after_in_parent=_in_parent, after_in_child=_in_child)
