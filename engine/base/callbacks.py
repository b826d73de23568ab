"""The two callbacks every long-running engine function takes.

``progress(done, total)`` is called after each unit of work (a file scanned, a slice encoded, a
study finished); ``should_stop()`` is polled between units (and, for an encoder call, every
10 ms while it runs) and returning True makes the function raise
:class:`~engine.base.errors.Cancelled`. Both are optional everywhere (None = no reporting, never
stop). Front ends back ``should_stop`` with a ``threading.Event`` that a Cancel button sets.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]

__all__ = ["ProgressFn", "StopFn"]
