"""One engine session per configuration in a process, shared by everything that asks for it.

Loading a model takes seconds and ~0.5 GiB, so the desktop app (every window, the tests), a batch
worker (every study it runs) and any other long-lived process reuse the session of a
:class:`~engine.inference.session.SessionConfig` instead of loading it again. Thread-safe: the
first caller of a configuration loads it, the others wait for that load.
"""

from __future__ import annotations

import threading

from engine.inference.session import Session, SessionConfig

_SESSIONS: dict[SessionConfig, Session] = {}
_LOCK = threading.Lock()
_LOADS = 0


def shared_session(config: SessionConfig) -> Session:
    """This process's session for ``config``, loaded on first use.

    Raises :class:`~engine.base.errors.ModelError` when the model cannot be loaded (or, with
    ``config.model_id``, does not have that sha256); nothing is registered then.
    """
    global _LOADS
    with _LOCK:
        s = _SESSIONS.get(config)
        if s is None:
            s = _SESSIONS[config] = Session(config)
            _LOADS += 1
        return s


def session_loads() -> int:
    """How many sessions this process has loaded (a batch worker: 1, whatever the number of studies)."""
    return _LOADS


__all__ = ["session_loads", "shared_session"]
