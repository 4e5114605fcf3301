"""Fixtures shared by the test modules (plain helpers live in helpers.py)."""

import pytest
from helpers import make_repo, run

from synthempathy.llm.models import resolve_model_path


@pytest.fixture(scope="session")
def model_path():
    """The embedded GGUF."""
    return resolve_model_path("default").resolve()  # absolute: Ray workers load it too


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """A temp copy of the repo with tiny params (helpers.TINY) after a full `dvc repro`, built once
    per session for test_pipeline and test_plots_browser; a test that changes it works on a copy."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    result = run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo
