"""Starts a real ``vexil serve`` (the binary named by ``VEXIL_BIN``) on a free port with a
fresh SQLite database, and drives its management API with the bootstrap token."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

TOKEN = "vx_pat_python-sdk-tests-0123456789abcdefghij"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class VexilServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="vexil-python-sdk-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log = open(os.path.join(self.dir, "server.log"), "ab")  # noqa: SIM115

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ, VEXIL_BOOTSTRAP_TOKEN=TOKEN)
        env.setdefault("VEXIL_LOG", "warn")
        self.process = subprocess.Popen(
            [
                self.binary,
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--database-url",
                f"sqlite://{self.dir}/vexil.db",
                # Insights written every 200 ms (10 s by default), so that tests read them soon.
                "--insights-flush-ms",
                "200",
            ],
            env=env,
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vexil serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"vexil serve did not answer /health within {timeout}s:\n{self.log()}")

    def kill(self) -> None:
        """Stops the server abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        self._log.flush()
        with open(os.path.join(self.dir, "server.log"), encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    # ------------------------------------------------------------------ management API

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {TOKEN}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path} -> {e.code}: {e.read().decode(errors='replace')}") from None
        return json.loads(text) if text else None

    def project(self) -> str:
        project_id: str = self.api("GET", "/api/v1/projects")["items"][0]["id"]
        return project_id

    def environment(self, key: str = "production") -> str:
        items: List[Dict[str, Any]] = self.api("GET", f"/api/v1/projects/{self.project()}/environments")["items"]
        return next(str(e["id"]) for e in items if e["key"] == key)

    def server_key(self, environment: str = "production") -> str:
        body = {"name": "python sdk tests", "type": "server", "environment_id": self.environment(environment)}
        key: str = self.api("POST", f"/api/v1/projects/{self.project()}/api-keys", body)["key"]
        return key

    def create_flag(self, key: str, **fields: Any) -> str:
        body = {"key": key, "name": key, **fields}
        flag_id: str = self.api("POST", f"/api/v1/projects/{self.project()}/feature-flags", body)["id"]
        return flag_id

    def configure(self, flag_id: str, config: Dict[str, Any], environment: str = "production") -> Any:
        path = f"/api/v1/flags/{flag_id}/environments/{self.environment(environment)}/config"
        return self.api("PATCH", path, config)
