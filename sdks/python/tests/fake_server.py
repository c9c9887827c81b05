"""A scripted stand-in for the server's SDK endpoints, to drive the client through
situations a real server does not produce on demand (a stream that fails, a key that is
rejected, insights endpoints that answer)."""

from __future__ import annotations

import json
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

CLOSE = object()

Request = Tuple[str, str, Dict[str, str], Any]


class FakeVexil:
    def __init__(self, ruleset: Dict[str, Any]) -> None:
        self.ruleset = ruleset
        self.config_status = 200
        self.stream_status = 200
        self.post_status = 404
        self.requests: List[Request] = []
        self._streams: List[queue.Queue[object]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self, body: Any = None) -> None:
                with fake._lock:
                    fake.requests.append((self.command, self.path, dict(self.headers.items()), body))

            def _status(self, status: int) -> None:
                payload = json.dumps({"error": {"code": "x", "message": f"scripted {status}"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._record()
                if self.path == "/api/v1/sdk/config":
                    if fake.config_status != 200:
                        return self._status(fake.config_status)
                    etag = f'"{fake.ruleset["version"]}"'
                    if self.headers.get("If-None-Match") == etag:
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.end_headers()
                        return None
                    body = json.dumps(fake.ruleset).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                if self.path == "/api/v1/sdk/stream":
                    if fake.stream_status != 200:
                        return self._status(fake.stream_status)
                    q: queue.Queue[object] = queue.Queue()
                    with fake._lock:
                        fake._streams.append(q)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(b": connected\n\n")
                    version = fake.ruleset["version"]
                    if self.headers.get("Last-Event-ID") != str(version):
                        data = json.dumps(fake.ruleset)
                        self.wfile.write(f"event: put\nid: {version}\ndata: {data}\n\n".encode())
                    try:
                        while True:
                            item = q.get()
                            if item is CLOSE:
                                return None
                            assert isinstance(item, bytes)
                            self.wfile.write(item)
                    except OSError:
                        return None
                    finally:
                        with fake._lock:
                            fake._streams.remove(q)
                return self._status(404)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                self._record(json.loads(self.rfile.read(length) or b"null"))
                self._status(fake.post_status)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def send(self, event: str, id_: int, data: Any) -> None:
        frame = f"event: {event}\nid: {id_}\ndata: {json.dumps(data)}\n\n".encode()
        with self._lock:
            for q in self._streams:
                q.put(frame)

    def drop_streams(self) -> None:
        with self._lock:
            for q in self._streams:
                q.put(CLOSE)

    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def seen(self, method: str, path: str) -> List[Request]:
        with self._lock:
            return [r for r in self.requests if r[0] == method and r[1] == path]

    def close(self) -> None:
        self.drop_streams()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def last_header(requests: List[Request], name: str) -> Optional[str]:
    return requests[-1][2].get(name) if requests else None
