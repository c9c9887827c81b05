from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from vexil_server import VexilServer

REPO = Path(__file__).resolve().parents[3]
VECTORS = REPO / "spec" / "vectors"


def vexil_bin() -> str:
    """The ``vexil`` binary for real-server tests, or skip them with the reason."""
    binary = os.environ.get("VEXIL_BIN")
    if not binary:
        pytest.skip("real-server tests need VEXIL_BIN=/path/to/vexil (cargo test runs them with it)")
    if not os.access(binary, os.X_OK):
        pytest.fail(f"VEXIL_BIN={binary} is not an executable file")
    return binary


@pytest.fixture(scope="module")
def server() -> Iterator[VexilServer]:
    """A `vexil serve` shared by a module's tests."""
    s = VexilServer(vexil_bin())
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def own_server() -> Iterator[VexilServer]:
    """A `vexil serve` of the test's own (to kill and restart)."""
    s = VexilServer(vexil_bin())
    s.start()
    try:
        yield s
    finally:
        s.stop()
