"""The client's requests, on the standard library's ``http.client``: the ruleset
(``GET /api/v1/sdk/config`` with ``If-None-Match``), the event stream
(``GET /api/v1/sdk/stream`` with ``Last-Event-ID``), and JSON posts for insights. The API
key travels only in the ``Authorization`` header and is never logged or shown."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from typing import Any, Dict, Optional, Union
from urllib.parse import urlsplit

from ._version import __version__

USER_AGENT = f"vexil-python/{__version__}"


class SyncError(Exception):
    """A request failed; the message is fit for a log line and the status reason."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def key_rejected(self) -> bool:
        """The server refused the key: retrying will not help until the key is fixed."""
        return self.status in (401, 403)


def _transport(e: BaseException) -> SyncError:
    if isinstance(e, socket.timeout):
        return SyncError("no response in time")
    return SyncError(f"server unreachable: {e}" if str(e) else f"server unreachable: {type(e).__name__}")


Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]


class Stream:
    """An open event stream: ``read()`` returns the bytes that arrived (``b""`` at the end);
    ``close()`` may be called from another thread and interrupts a blocked read."""

    def __init__(self, conn: Connection, sock: socket.socket, response: http.client.HTTPResponse) -> None:
        # The socket is kept apart: http.client hands a connection that will close over to
        # its response and forgets the socket.
        self._conn = conn
        self._sock = sock
        self._response = response
        self._lock = threading.Lock()
        self._closed = False

    def set_timeout(self, seconds: float) -> None:
        self._sock.settimeout(seconds)

    def read(self) -> bytes:
        return self._response.read1(65536)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._response.close()
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(OSError):
            self._sock.close()


class Http:
    def __init__(
        self,
        base_url: str,
        sdk_key: str,
        connect_timeout: float,
        request_timeout: float,
        max_bytes: int,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"invalid server URL {base_url!r}: expected http://host[:port][/prefix]")
        try:
            _ = parts.port
        except ValueError as e:
            raise ValueError(f"invalid server URL {base_url!r}: {e}") from None
        if not sdk_key or any(c in sdk_key for c in "\r\n"):
            raise ValueError("invalid API key: empty or not usable in an HTTP header")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._auth = f"Bearer {sdk_key}"
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._max_bytes = max_bytes
        self._ssl = ssl.create_default_context() if self._https else None

    def __repr__(self) -> str:
        scheme = "https" if self._https else "http"
        port = f":{self._port}" if self._port else ""
        return f"Http({scheme}://{self._host}{port}{self._prefix})"

    def _connect(self) -> Connection:
        conn: Connection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._connect_timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._connect_timeout)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _transport(e) from None
        assert conn.sock is not None
        conn.sock.settimeout(self._request_timeout)
        return conn

    def _headers(self, accept: str) -> Dict[str, str]:
        return {"Authorization": self._auth, "Accept": accept, "User-Agent": USER_AGENT}

    def fetch_config(self, known_version: Optional[int]) -> Optional[Dict[str, Any]]:
        """The ruleset document, or ``None`` when the server is still at ``known_version``."""
        headers = self._headers("application/json")
        if known_version is not None:
            headers["If-None-Match"] = f'"{known_version}"'
        conn = self._connect()
        try:
            conn.request("GET", self._prefix + "/api/v1/sdk/config", headers=headers)
            response = conn.getresponse()
            if response.status == 304:
                return None
            if response.status != 200:
                raise SyncError(_status_text(response), response.status)
            body = response.read(self._max_bytes + 1)
        except (OSError, http.client.HTTPException) as e:
            raise _transport(e) from None
        finally:
            conn.close()
        if len(body) > self._max_bytes:
            raise SyncError(f"invalid response: ruleset larger than {self._max_bytes} bytes")
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise SyncError(f"invalid response: the ruleset is not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise SyncError("invalid response: the ruleset is not a JSON object")
        return doc

    def open_stream(self, last_event_id: Optional[int]) -> Stream:
        """Opens the event stream, resuming after ``last_event_id``."""
        headers = self._headers("text/event-stream")
        headers["Cache-Control"] = "no-cache"
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        conn = self._connect()
        sock = conn.sock
        assert sock is not None
        try:
            conn.request("GET", self._prefix + "/api/v1/sdk/stream", headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _transport(e) from None
        if response.status != 200:
            message = _status_text(response)
            conn.close()
            raise SyncError(message, response.status)
        content_type = response.getheader("Content-Type", "")
        if not content_type.strip().startswith("text/event-stream"):
            conn.close()
            raise SyncError("invalid response: the stream is not text/event-stream")
        return Stream(conn, sock, response)

    def post_json(self, path: str, body: Any) -> int:
        """Posts ``body`` as JSON; returns the HTTP status. Raises :class:`SyncError` when the
        server cannot be reached."""
        data = json.dumps(body, separators=(",", ":"), default=str).encode()
        headers = self._headers("application/json")
        headers["Content-Type"] = "application/json"
        conn = self._connect()
        try:
            conn.request("POST", self._prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            response.read(65536)
            return response.status
        except (OSError, http.client.HTTPException) as e:
            raise _transport(e) from None
        finally:
            conn.close()


def _status_text(response: http.client.HTTPResponse) -> str:
    """``HTTP 401: <the server's message>`` when the body has the API's error shape."""
    text = f"HTTP {response.status}"
    try:
        body = json.loads(response.read(65536) or b"null")
        message = body["error"]["message"] if isinstance(body, dict) else None
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        message = None
    return f"{text}: {message}" if isinstance(message, str) and message else text
