"""`make serve`: llama.cpp's own OpenAI-compatible server (llama-server, built by `make
llama-tools` from the llama.cpp sources vendored in the pinned llama-cpp-python sdist) for
params.yaml's model, on this machine, where ``generation.engine: openai`` finds it:

* the GGUF of ``model.path`` (``default``: the embedded SmolLM2-135M), served under the id
  ``generation.served_model``; ``generation.model_revision`` must be its sha256, so that the
  cache key names the weights actually served;
* on the loopback address and port of ``generation.endpoints[0]``;
* ``--slots`` sequences decoded together by continuous batching (default: ``generation.concurrency``,
  the requests the engine keeps in flight), each with ``model.n_ctx`` tokens of context;
* ``model.n_threads`` threads, ``model.n_gpu_layers`` layers on the GPU of a CUDA build.

    python -m synthempathy.llm.serve [--slots N] [--dry-run]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from synthempathy.errors import InputError
from synthempathy.llm.models import file_sha256, resolve_model_path
from synthempathy.params import Params, load_params

LLAMA_SERVER = Path(sys.prefix) / "llama.cpp" / "bin" / "llama-server"  # where `make llama-tools` puts it


def loopback_address(url: str) -> tuple[str, int]:
    """Host and port of an endpoint URL on this machine; anything else is not ours to serve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or parts.port is None:
        raise InputError(f"generation.endpoints[0]={url}: make serve starts a server on this machine only; set it to http://127.0.0.1:PORT/v1")
    return ("127.0.0.1" if host == "localhost" else host), parts.port


def server_command(binary: Path, gguf: Path, params: Params, host: str, port: int, slots: int) -> list[str]:
    """llama-server's command line for ``params``' model, served as ``generation.served_model``."""
    model = params.model
    command = [
        str(binary),
        "--model", str(gguf),
        "--alias", params.generation.served_model,
        "--host", host,
        "--port", str(port),
        "--parallel", str(slots),
        "--ctx-size", str(model.n_ctx * slots),  # split evenly: model.n_ctx per slot
        "--threads", str(model.n_threads),
        "--threads-batch", str(model.n_threads),
        "--n-gpu-layers", "all" if model.n_gpu_layers == -1 else str(model.n_gpu_layers),
        "--metrics",  # Prometheus counters at /metrics
    ]  # fmt: skip
    if model.chat_format is not None:
        command += ["--chat-template", model.chat_format]
    return command


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server started by :func:`launch`."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def launch(command: list[str], host: str, port: int, log: IO[bytes], timeout: float = 120) -> subprocess.Popen:
    """Start a server in the background (tests, benchmarks) and return once /health answers 200."""
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{Path(command[0]).name} exited with code {process.returncode} before it was ready; see {log.name}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:  # not listening yet, or 503 while the model loads
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{Path(command[0]).name} not ready after {timeout:g} s; see {log.name}")


def check_revision(params: Params, gguf: Path) -> None:
    """The cache key says which weights made a completion: make serve must serve those."""
    expected = f"sha256:{file_sha256(gguf)}"
    if params.generation.model_revision != expected:
        raise InputError(
            f"generation.model_revision={params.generation.model_revision}: make serve serves model.path={params.model.path} ({gguf.name}), "
            f"whose revision is {expected}; set generation.model_revision={expected}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, help="sequences decoded together (default: generation.concurrency)")
    parser.add_argument("--dry-run", action="store_true", help="print the command line, start nothing")
    args = parser.parse_args()
    try:
        command = serve_command(args.slots)
    except InputError as exc:  # one line, as the stages print it
        sys.exit(f"error: {exc}")
    print(" ".join(command), flush=True)
    if not args.dry_run:
        os.execv(command[0], command)


def serve_command(slots: int | None) -> list[str]:
    """`make serve`'s llama-server command line for params.yaml, after checking what it serves."""
    params = load_params()
    if not LLAMA_SERVER.is_file():
        raise InputError(f"{LLAMA_SERVER}: not built; run make llama-tools")
    gguf = resolve_model_path(params.model.path).resolve()
    check_revision(params, gguf)
    host, port = loopback_address(params.generation.endpoints[0])
    print(f"serving {params.generation.served_model} at {params.generation.endpoints[0]}: dvc exp run -S generation.engine=openai", flush=True)
    return server_command(LLAMA_SERVER, gguf, params, host, port, slots or params.generation.concurrency)


if __name__ == "__main__":
    main()
