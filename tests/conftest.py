"""Fixtures shared by test modules."""

import pytest

from test_pipeline import make_repo, run


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """A temp copy of the repo with tiny params (test_pipeline.TINY) after a full `dvc repro`.
    Built once per test session: the pipeline tests and the plot tests read it; a test that
    changes it works on a copy."""
    repo = make_repo(tmp_path_factory.mktemp("repo"))
    result = run(["dvc", "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo
