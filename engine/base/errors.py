"""Typed exceptions of the engine.

Every error a user can cause (bad file, bad box, wrong model file) is a subclass of
:class:`BoxSegError`, so that front ends (CLI, app) can show a one-line message instead of a
traceback. Programming errors stay ordinary Python exceptions.
"""

from __future__ import annotations


class BoxSegError(Exception):
    """Base class of all user-facing engine errors; ``str(err)`` is a complete one-line message."""


class ModelError(BoxSegError):
    """A model is missing, its manifest is malformed, or a file's sha256 does not match."""


class InputError(BoxSegError):
    """An input file or array cannot be used (missing keys, wrong dtype/shape, unreadable)."""


class PromptError(BoxSegError):
    """A prompt (box, points) is invalid for the image it is applied to."""


class Cancelled(BoxSegError):
    """A long-running job was stopped by its ``should_stop`` callback."""
