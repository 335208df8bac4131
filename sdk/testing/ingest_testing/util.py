"""Small helpers with no dependency on the daemon: ports and polling."""
import socket
import time

import pytest


def free_port():
    """A TCP port that was free a moment ago (bind to port 0, let the kernel pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.1, msg=None):
    """Poll predicate() until it returns something truthy; return that value.
    Fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(msg or f"timed out after {timeout}s waiting for {predicate!r}")
        time.sleep(interval)
