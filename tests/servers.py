"""Real OpenAI-compatible servers for the tests, all on 127.0.0.1: llama-server on the embedded
model (started the way `make serve` starts it), a proxy in front of one that counts the requests
by seed and injects faults, and a web server that answers HTML."""

from __future__ import annotations

import http.client
import http.server
import json
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from synthempathy.llm.models import resolve_model_path
from synthempathy.llm.serve import LLAMA_SERVER, free_port, launch, server_command
from synthempathy.params import load_params

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


class LlamaServer:
    """llama-server for the embedded model as params.yaml's served_model (the command line of
    `make serve`), ``slots`` slots of ``n_ctx`` tokens, one thread; started when this returns."""

    def __init__(self, log_dir: Path, slots: int = 2, n_ctx: int = 1024, threads: int = 1, extra: tuple[str, ...] = ()) -> None:
        params = load_params(ROOT / "params.yaml")
        params = params.model_copy(update={"model": params.model.model_copy(update={"n_ctx": n_ctx, "n_threads": threads})})
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/v1"
        command = server_command(LLAMA_SERVER, resolve_model_path("default").resolve(), params, HOST, self.port, slots) + list(extra)
        with (log_dir / f"llama-server-{self.port}.log").open("wb") as log:
            self.process = launch(command, HOST, self.port, log)

    def kill(self) -> None:
        """SIGKILL: the server dies mid-request, as a crash or an OOM kill would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class Proxy:
    """Forwards every request to ``upstream`` (an endpoint URL) and records each chat request's
    seed as it comes in (``sent``) and once its answer went out whole (``delivered``).

    ``faults[seed]`` lists what happens to that request's attempts in turn: ``"429"`` and
    ``"500"`` answer with that error instead of forwarding, ``"404"`` with vLLM's unknown-model
    error, ``"slow"`` forwards after 3 seconds, ``"truncate"`` forwards, then sends half the answer
    and hangs up; later attempts are forwarded. Without a live upstream it answers 502, as a load
    balancer would."""

    def __init__(self, upstream: str, faults: dict[int, list[str]] | None = None) -> None:
        self.upstream = upstream.split("//", 1)[1].split("/", 1)[0]
        self.faults = {seed: deque(kinds) for seed, kinds in (faults or {}).items()}
        self.sent: list[int] = []
        self.delivered: list[int] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, b"")

            def do_POST(self) -> None:
                proxy._handle(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.server = _Server((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handle(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        fault, seed = None, None
        if handler.path.endswith("/chat/completions"):
            seed = json.loads(body)["seed"]
            with self.lock:
                self.sent.append(seed)
                fault = self.faults[seed].popleft() if self.faults.get(seed) else None
        if fault in ("429", "500"):
            return _answer(handler, int(fault), {"error": {"message": f"injected {fault}"}})
        if fault == "404":
            return _answer(handler, 404, {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}})
        if fault == "slow":
            time.sleep(3.0)
        try:
            upstream = http.client.HTTPConnection(self.upstream, timeout=120)
            upstream.request(handler.command, handler.path, body=body or None, headers={"Content-Type": "application/json"})
            response = upstream.getresponse()
            status, payload, kind = response.status, response.read(), response.getheader("Content-Type", "application/json")
            upstream.close()
        except (OSError, http.client.HTTPException) as exc:
            return _answer(handler, 502, {"error": {"message": f"upstream: {exc}"}})
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if fault == "truncate":
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(payload)
        handler.wfile.flush()
        if seed is not None and status == 200:
            with self.lock:
                self.delivered.append(seed)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _answer(handler: http.server.BaseHTTPRequestHandler, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


class HtmlServer:
    """A web server that is not an inference server: every path answers a 200 HTML page."""

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                page = b"<!doctype html><html><body>It works!</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            do_POST = do_GET

        self.server = _Server((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
