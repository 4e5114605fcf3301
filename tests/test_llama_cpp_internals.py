"""llama_cpp_internals.py holds every use of llama-cpp-python internals for one pinned version: the
Makefile installs the version it names, and any other installed version stops at import."""

import subprocess
import sys

from helpers import ROOT

from synthempathy.llm.llama_cpp_internals import LLAMA_CPP_VERSION


def test_makefile_installs_the_version_the_module_is_ported_to():
    dry_run = subprocess.run(["make", "-n", "-B", ".venv/.llama-installed"], cwd=ROOT, capture_output=True, text=True).stdout
    assert f"llama-cpp-python=={LLAMA_CPP_VERSION}" in dry_run


def test_another_installed_version_stops_at_import_with_one_line():
    code = (
        "import importlib.metadata as m; m.version = lambda name: '0.3.99';"
        "from synthempathy.errors import StageFailure\n"
        "try:\n    import synthempathy.llm.llama_cpp_internals\nexcept StageFailure as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True).stdout
    assert out.startswith(f"llama-cpp-python 0.3.99 is installed, but synthempathy/llm/llama_cpp_internals.py is ported to {LLAMA_CPP_VERSION}; run make setup")
