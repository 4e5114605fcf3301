"""An OpenAI-compatible stub for bench_server's client ceiling: it lists one model and answers
every chat request at once with the same canned completion, so what a run measures is the
client (openai engine, cache, tqdm) and the loopback HTTP, not a model.

    python -m benchmarks.stub_server PORT SERVED_MODEL COMPLETION_TOKENS
"""

from __future__ import annotations

import http.server
import json
import sys


def main() -> None:
    port, served_model, tokens = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    choice = {"message": {"role": "assistant", "content": "word " * tokens}, "finish_reason": "length"}
    completion = json.dumps({"choices": [choice], "usage": {"prompt_tokens": 200, "completion_tokens": tokens}}).encode()
    models = json.dumps({"object": "list", "data": [{"id": served_model, "object": "model"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args) -> None:
            pass

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # /health and /v1/models
            self._send(models)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(completion)

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
