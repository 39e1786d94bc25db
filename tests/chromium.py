"""Headless Chromium for the browser tests (the report page, the demo): load a page and collect its console
errors, or drive it over the DevTools protocol (a small client on the standard library; nothing to install
beyond Debian's chromium). Missing Chromium fails the tests under CI=true and skips them elsewhere."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    """The Chromium binary; missing -> the test fails under CI=true (the setup script installs it), else skips."""
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (CI=true): the setup script installs it")
        pytest.skip("chromium is not installed")
    return path


# Test instrumentation, put in a copy of the page only: console.error is logged by Chromium like console.log,
# so it is marked to be found.
CONSOLE_HOOK = ("<script>(function(){var e=console.error;console.error=function(){"
                "console.log('WB-CONSOLE-ERROR '+Array.prototype.join.call(arguments,' '));e.apply(console,arguments);};"
                "})();</script>")


def load_in_chromium(url: str, budget_ms: int = 8000) -> tuple[str, list[str]]:
    """(the DOM after `budget_ms` of virtual time, the console lines that are errors)."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                               f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=180)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    errors = [line for line in console if re.search(r"Uncaught|WB-CONSOLE-ERROR|ERROR:CONSOLE", line)]
    return done.stdout, errors


class DevTools:
    """A minimal Chrome DevTools Protocol client over a hand-rolled WebSocket (the standard library only: no
    browser driver is installed). Events that arrive while waiting for a reply are kept in `events`."""

    def __init__(self, ws_url: str, timeout: float = 60.0):
        hostport, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._exact(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"no WebSocket from DevTools: {head[:200]!r}")
        self.next_id, self.events = 0, []

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            buf += chunk
        return buf

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else \
            bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(b"\x81" + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _receive(self) -> dict[str, Any]:
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            n = struct.unpack(">H", self._exact(2))[0] if n == 126 else struct.unpack(">Q", self._exact(8))[0] \
                if n == 127 else n
            payload, opcode = self._exact(n), b0 & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools closed the connection")
            if opcode in (9, 10):  # ping / pong
                continue
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = self._receive()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0, every_s: float = 0.2) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(every_s)
        raise TimeoutError(f"waited {timeout_s:g} s for {expression}")

    def errors(self) -> list[str]:
        """Uncaught exceptions and console.error messages seen so far."""
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(e["params"]["exceptionDetails"])[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"])[:500])
        return out


@contextmanager
def devtools_page(url: str) -> Iterator[DevTools]:
    """Headless Chromium (autoplay allowed) with `url` open, driven through DevTools."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # Chromium's helpers may linger
        proc = subprocess.Popen([chromium(), *CHROMIUM_FLAGS[:-2], f"--user-data-dir={profile}",
                                 "--remote-debugging-port=0", "--autoplay-policy=no-user-gesture-required",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.is_file() and "\n" in active.read_text()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("Chromium did not open its DevTools port")
                time.sleep(0.1)
            port = active.read_text().split("\n")[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
                page = next(t for t in json.load(r) if t["type"] == "page")
            tools = DevTools(page["webSocketDebuggerUrl"])
            tools.call("Runtime.enable")
            tools.call("Page.enable")
            tools.call("Page.navigate", url=url)
            yield tools
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
