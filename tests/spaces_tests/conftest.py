from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here works on tiny tensors; see ``single_thread`` in tests/conftest.py."""
