"""Third-party imports without their noise: ``import learn2learn`` imports Gym 0.26, which prints Gym's
"unmaintained" notice to stderr; it says nothing to a user of this package, who never uses Gym."""

from __future__ import annotations

import contextlib
import io
import sys
from types import ModuleType

__all__ = ["import_learn2learn"]


def _gym_notice() -> str | None:
    """The notice Gym prints for its installed version (from ``gym_notices``), if any."""
    gym = sys.modules.get("gym")
    try:
        from gym_notices.notices import notices
    except ImportError:
        return None
    return notices.get(getattr(gym, "__version__", None))


def import_learn2learn() -> ModuleType:
    """``import learn2learn``, with exactly Gym's version notice dropped from what the import writes to
    stderr (anything else it writes is passed on). Once imported, later ``import learn2learn``
    statements anywhere are silent."""
    if "learn2learn" in sys.modules:
        return sys.modules["learn2learn"]
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            import learn2learn
    finally:
        text = captured.getvalue()
        notice = _gym_notice()
        if notice:
            text = text.replace(notice + "\n", "").replace(notice, "")
        if text:
            sys.stderr.write(text)
    return learn2learn
