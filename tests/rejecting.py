"""``rejects`` and ``passes``: how the tests say "this checker turns that answer down, with these words" and
"this checker accepts that answer"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def rejects(checker: Callable[..., Any], answer: Any, *phrases: str, **kwargs: Any) -> str:
    """Assert that ``checker(answer, **kwargs)`` fails with an AssertionError whose message holds every one of
    ``phrases``; return the message."""
    with pytest.raises(AssertionError) as info:
        checker(answer, **kwargs)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in:\n{message}"
    return message


def passes(checker: Callable[..., Any], answer: Any, capsys: pytest.CaptureFixture[str], name: str) -> str:
    """Assert that ``checker(answer)`` prints one line ``✓ name: ...`` that ends in "these checks passed"; return it."""
    checker(answer)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"✓ {name}: ") and line.endswith("these checks passed"), line
    return line
