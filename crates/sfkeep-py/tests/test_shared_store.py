"""Python processes and a ``sfkeep`` CLI process share one store (the encrypted file, then
Redis): one token request per session death across all of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sfkeep
import sfkeep.requests
from conftest import sfkeep_bin

CHILD = r"""
import json, os, sys, threading
import sfkeep, sfkeep.requests
kw = json.loads(os.environ["SF_MANAGER"])
m = sfkeep.TokenManager(**kw)
s = sfkeep.requests.session(m)
url = os.environ["SF_URL"]
codes = []
def call():
    codes.append(s.get(url).status_code)
threads = [threading.Thread(target=call) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"codes": codes, "generation": m.token().generation}))
"""


class Fleet:
    """The CLI (profile ``fake``, with the store the test chose) and Python managers built
    with the same settings."""

    def __init__(self, org, tmp: Path, store: dict, profile_store: str) -> None:
        self.org = org
        text = Path(org["profile_file"]).read_text()
        head = text.split("[profiles.fake.store]")[0]
        self.profile = tmp / "sfkeep.toml"
        self.profile.write_text(head + "[profiles.fake.store]\n" + profile_store)
        self.profile.chmod(0o600)
        secret = lambda name: (Path(org["profile_file"]).parent / name).read_text().strip()  # noqa: E731
        self.kw = dict(
            login_url=org["login_url"], client_id=org["client_id"], client_secret=secret("client_secret"),
            refresh_token=secret("refresh_token"), username=org["username"],
            private_key=Path(org["jwt_key_file"]).read_text(), fallback_grant="jwt_bearer",
            cache_key=secret("cache.key"), **store,
        )
        self.env = dict(os.environ, HOME=str(tmp), XDG_STATE_HOME=str(tmp / "state"))
        self.url = f"{org['instance_url']}/services/data/v59.0/limits"

    def cli(self, *args: str) -> str:
        r = subprocess.run([sfkeep_bin(), "--config", str(self.profile), "--profile", "fake", *args],
                           env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def cli_status(self) -> dict:
        return json.loads(self.cli("status", "--json"))["result"]

    def manager(self) -> sfkeep.TokenManager:
        return sfkeep.TokenManager(**self.kw)

    def children(self, n: int):
        env = dict(self.env, SF_MANAGER=json.dumps(self.kw), SF_URL=self.url)
        procs = [subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(n)]
        return procs

    @staticmethod
    def collect(procs):
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            assert p.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out


def run_fleet(f: Fleet) -> None:
    org = f.org
    # The CLI logs in first; Python adopts its token from the store.
    f.cli("token")
    assert org.token_requests() == 1
    m = f.manager()
    assert m.token().fingerprint == f.cli_status()["fingerprint"]
    assert org.token_requests() == 1

    # Death 1, seen first by Python: it refreshes; the CLI then uses what Python stored.
    org.user("logout")
    s = sfkeep.requests.session(m)
    assert s.get(f.url).status_code == 200
    assert org.token_requests() == 2
    f.cli("api", "GET", "limits")
    assert org.token_requests() == 2

    # Death 2, seen first by the CLI: Python adopts what the CLI stored.
    org.user("logout")
    f.cli("api", "GET", "limits")
    assert org.token_requests() == 3
    assert s.get(f.url).status_code == 200
    assert org.token_requests() == 3

    # Death 3, seen at once by two Python processes of 8 threads each and the CLI.
    org.user("logout")
    procs = f.children(2)
    f.cli("api", "GET", "limits")
    results = f.collect(procs)
    assert all(r["codes"] == [200] * 8 for r in results), results
    assert org.token_requests() == 4, org.stats()["token_requests"]
    assert {r["generation"] for r in results} == {4}


def test_python_and_the_cli_share_the_encrypted_file_store(org, tmp_path):
    path = tmp_path / "tokens.enc"
    f = Fleet(org, tmp_path, {"store": "file", "store_path": str(path)},
              f'kind = "file"\npath = "{path}"\nkey_file = "{Path(org["profile_file"]).parent / "cache.key"}"\n')
    run_fleet(f)


def test_python_and_the_cli_share_redis(org, tmp_path, redis):
    f = Fleet(org, tmp_path, {"store": "redis", "redis_url": redis.url},
              f'kind = "redis"\nurl = "{redis.url}"\nkey_file = "{Path(org["profile_file"]).parent / "cache.key"}"\n')
    run_fleet(f)
