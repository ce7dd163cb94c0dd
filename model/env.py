"""On/off flags from environment variables and settings text, parsed one way everywhere.

``1 / true / yes / on`` are True and ``0 / false / no / off`` (and the empty string) are False,
in any case and with surrounding spaces; anything else is neither, so a caller can say so
instead of guessing. Used for PATCHLIGHT_PUBLIC, HF_HUB_OFFLINE and boolean settings.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def parse_flag(text) -> bool | None:
    """True for 1/true/yes/on, False for 0/false/no/off/'' (any case, spaces ignored), else None.

    A bool is returned as it is; None (an unset value) is False.
    """
    if isinstance(text, bool):
        return text
    if text is None:
        return False
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether environment variable `name` is set to a true word; unset or anything else is False."""
    return parse_flag((os.environ if environ is None else environ).get(name, "")) is True
