"""Fixtures shared by the test modules (plain helpers live in helpers.py)."""

import pytest

from synthempathy.llm.models import resolve_model_path


@pytest.fixture(scope="session")
def model_path():
    """The embedded GGUF."""
    return resolve_model_path("default").resolve()  # absolute: Ray workers load it too
