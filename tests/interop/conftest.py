"""Shared fixtures of the interop tests: the real onair binary on this machine."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("ONAIR_BIN", str(ROOT / "target" / "debug" / "onair"))


class Server:
    """The onair binary on loopback with a fresh data directory."""

    def __init__(self, udp_host="127.0.0.1"):
        self.dir = tempfile.mkdtemp(prefix="onair-interop-")
        # TURN on loopback with free ports and no HTTPS listener, so servers never collide on
        # the default ports (3478, 8443) with each other or with anything else on the machine.
        config = Path(self.dir) / "onair.toml"
        config.write_text('[turn]\nlisten = "127.0.0.1"\nudp_port = 0\ntcp_port = 0\n')
        args = [BIN, "serve", "--http", "127.0.0.1:0", "--https", "off", "--data-dir", self.dir,
                "--config", str(config)]
        if udp_host:
            args += ["--udp-host", udp_host]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.base = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"listening on (http\S+)", line)
            if match:
                self.base = match.group(1)
                break
        assert self.base, "server printed its address"

    def token(self, room, role):
        out = subprocess.run(
            [BIN, "token", "--data-dir", self.dir, "--room", room, "--role", role, "--name", "aiortc"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server():
    """onair with media on loopback."""
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def lan_server():
    """onair with media on every non-loopback interface (its default), for stacks that do not
    pair their candidates with a loopback address (libnice)."""
    s = Server(udp_host=None)
    yield s
    s.stop()


