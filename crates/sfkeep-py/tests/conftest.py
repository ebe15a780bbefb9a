"""Fixtures: the simulated org (``sfkeep fake-org``, a real HTTP server on loopback), Redis,
and the value-based secret audit of everything the tests captured.

Environment:
  SFKEEP_BIN   the ``sfkeep`` CLI (default: target/debug/sfkeep of this repo)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests

import sfkeep

REPO = Path(__file__).resolve().parents[3]


def sfkeep_bin() -> str:
    path = os.environ.get("SFKEEP_BIN") or str(REPO / "target" / "debug" / "sfkeep")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the sfkeep CLI is not at {path}: build it (cargo build -p sfkeep-cli) or set SFKEEP_BIN")
    return path


class Org:
    """A running ``sfkeep fake-org`` and its admin API."""

    def __init__(self, tmp: Path, accounts: int = 20) -> None:
        self.state = tmp / "org"
        self.proc = subprocess.Popen(
            [sfkeep_bin(), "fake-org", "--listen", "127.0.0.1:0", "--accounts", str(accounts),
             "--state-dir", str(self.state)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"sfkeep fake-org did not start: {err}")
        self.info: Dict[str, Any] = json.loads(line)
        self.http = requests.Session()

    def __getitem__(self, key: str) -> Any:
        return self.info[key]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(method, f"{self['admin_url']}{path}", json=body, timeout=30)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def stats(self) -> Dict[str, Any]:
        return self.admin("GET", "/stats")

    def token_requests(self) -> int:
        return sum(self.stats()["token_requests"].values())

    def user(self, action: str, body: Any = None) -> None:
        self.admin("POST", f"/users/{self['username']}/{action}", body)

    def secrets(self) -> List[str]:
        """Every secret value this org knows: credentials, keys, every token it issued."""
        tokens = self.admin("GET", "/tokens")
        values = [self[k] for k in ("client_secret", "password", "security_token", "refresh_token")]
        values += tokens["access_tokens"] + tokens["refresh_tokens"]
        key = Path(self["jwt_key_file"]).read_text()
        values += [line for line in key.splitlines() if len(line) >= 40 and "-----" not in line]
        cache_key = self.state / "cache.key"
        if cache_key.exists():
            values.append(cache_key.read_text().strip())
        return [v for v in values if v]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Captured:
    """Everything a test could leak a secret into: log records, exception texts, reprs."""

    def __init__(self) -> None:
        self.texts: List[str] = []

    def add(self, *items: Any) -> None:
        for item in items:
            self.texts.append(str(item))
            self.texts.append(repr(item))


CAPTURED = Captured()
SECRETS: List[str] = []


class _Keep(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        CAPTURED.texts.append(self.format(record))
        CAPTURED.texts.append(json.dumps({k: str(v) for k, v in vars(record).items()}))


_handler = _Keep(level=logging.DEBUG)
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
logging.getLogger("sfkeep").addHandler(_handler)
logging.getLogger("sfkeep").setLevel(logging.DEBUG)


@pytest.fixture
def captured() -> Captured:
    return CAPTURED


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    o = Org(tmp_path)
    try:
        yield o
    finally:
        try:
            SECRETS.extend(o.secrets())
        finally:
            o.stop()


def manager_for(org: Org, **kw: Any) -> sfkeep.TokenManager:
    """A manager with the org's refresh token (and JWT bearer fallback unless told)."""
    args: Dict[str, Any] = dict(
        login_url=org["login_url"],
        client_id=org["client_id"],
        client_secret=org["client_secret"],
        refresh_token=org["refresh_token"],
        username=org["username"],
        private_key=Path(org["jwt_key_file"]).read_text(),
    )
    args.update(kw)
    return sfkeep.TokenManager(**args)


def wait_for(what: str, check: Any, timeout: float = 60.0) -> Any:
    """Polls ``check`` until it returns a true value (a condition, never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A real redis-server on a free loopback port, no persistence."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (scripts/test installs it)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for("redis-server", self._up, timeout=30)
        self.url = f"redis://127.0.0.1:{self.port}"

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def redis() -> Iterator[Redis]:
    r = Redis()
    try:
        yield r
    finally:
        r.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The value-based audit: no secret any org knew appears in anything captured."""
    if exitstatus != 0 or not SECRETS:
        return
    leaks = sorted({s[:6] + "…" for s in SECRETS for t in CAPTURED.texts if s in t})
    if leaks:
        session.exitstatus = 1
        sys.stderr.write(f"\nSECRET LEAK: {len(leaks)} secret value(s) found in captured output: {leaks}\n")
    else:
        sys.stderr.write(
            f"\nsecret audit: {len(set(SECRETS))} secret values, {len(CAPTURED.texts)} captured texts, no leak\n"
        )
