"""An in-process OpenAI-compatible HTTP server on 127.0.0.1 for the LLM backend's fast tests.

``FakeOpenAI(responder)`` serves ``GET /v1/models`` and ``POST /v1/chat/completions``. The
responder gets the request body and returns a ``FakeReply`` (status, content, delay, raw body,
headers) or a plain string (the content, status 200). The server records every request body,
the ``Authorization`` headers seen, and the most requests it had in flight at once.

It is also runnable on its own (``python tests/fake_openai.py PORT``) for subprocess tests.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "fake-judge"


@dataclass
class FakeReply:
    status: int = 200
    content: str = ""
    delay_s: float = 0.0
    raw: bytes | None = None  # sent verbatim instead of a completion body
    headers: Mapping[str, str] = field(default_factory=dict)
    trickle_s: float = 0.0  # send the body one byte at a time, this far apart


Responder = Callable[[dict[str, Any]], "FakeReply | str"]


def user_text(body: Mapping[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def rule_responder(body: Mapping[str, Any]) -> FakeReply | str:
    """A deterministic judge by template, for tests that need plausible replies.

    - claims: ``supported`` when every word of the claim occurs in the passages, ``contradicted``
      when the claim holds the word "never", else ``not_enough_info``;
    - math: the first step holding "= 5" (wrong on purpose in the test data), else null;
    - code: the first line holding "-" , else null;
    - facts: the sentence cut at " and ".
    """
    system = body["messages"][0]["content"]
    text = user_text(body)
    if "fact checker" in system:
        claim = re.search(r"^Claim: (.*)$", text, re.M).group(1)
        passages = " ".join(re.findall(r"^\[\d+\] (.*)$", text, re.M)).lower()
        words = re.findall(r"[a-z0-9]+", claim.lower())
        if "never" in words:
            label = "contradicted"
        elif all(w in passages for w in words):
            label = "supported"
        else:
            label = "not_enough_info"
        return json.dumps({"label": label, "passage": None, "explanation": f"rule: {label}"})
    if "mathematics grader" in system:
        steps = re.findall(r"^Step (\d+): (.*)$", text, re.M)
        bad = next((int(n) for n, s in steps if "= 5" in s), None)
        return json.dumps({"first_error_step": bad, "explanation": "rule"})
    if "code reviewer" in system:
        lines = re.findall(r"^(\d+)\| (.*)$", text, re.M)
        bad = next((int(n) for n, s in lines if "-" in s), None)
        return json.dumps({"first_error_line": bad, "explanation": "rule"})
    if "atomic facts" in system:
        sentence = text.rsplit("Sentence: ", 1)[1].strip()
        return json.dumps({"facts": [p.strip().rstrip(".") + "." for p in
                                     sentence.split(" and ")]})
    return "I do not understand"


class FakeOpenAI:
    """Start with ``with FakeOpenAI(responder) as server: server.base_url``."""

    def __init__(self, responder: Responder = rule_responder, port: int = 0) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, headers: Mapping[str, str] = {},
                      trickle_s: float = 0.0) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    if trickle_s:
                        for i in range(len(payload)):
                            self.wfile.write(payload[i:i + 1])
                            self.wfile.flush()
                            time.sleep(trickle_s)
                        return
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [
                        {"id": MODEL_ID, "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, b'{"error": "not found"}')
                    return
                with outer._lock:
                    outer.requests.append(body)
                    outer.auth.append(self.headers.get("Authorization"))
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    reply = outer.responder(body)
                    if isinstance(reply, str):
                        reply = FakeReply(content=reply)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                if reply.raw is not None:
                    payload = reply.raw
                elif reply.status != 200:
                    payload = json.dumps({"error": {"message": reply.content}}).encode()
                else:
                    payload = json.dumps({
                        "id": "cmpl-fake", "object": "chat.completion", "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply.content}}],
                    }).encode()
                self._send(reply.status, payload, reply.headers, reply.trickle_s)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    with FakeOpenAI(lambda b: FakeReply(content=str(rule_responder(b)), delay_s=delay),
                    port=int(sys.argv[1])) as s:
        print(s.base_url, flush=True)
        threading.Event().wait()
