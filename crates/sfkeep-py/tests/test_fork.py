"""A pre-fork server: the parent gets a token, then forks workers that use the same
TokenManager object. Threads do not survive fork, so each child builds its own runtime on
first use (docs: sfkeep-py/src/runtime.rs); with a shared store it adopts the parent's token
instead of requesting one."""

from __future__ import annotations

import base64
import json
import os

import sfkeep
from conftest import manager_for


def in_children(n, work):
    """Forks ``n`` children that run ``work(i)``; returns what each returned (JSON)."""
    r, w = os.pipe()
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                out = {"ok": work(i)}
            except BaseException as e:  # noqa: BLE001 (reported to the parent)
                out = {"error": f"{type(e).__name__}: {e}"}
                code = 1
            os.write(w, (json.dumps(out) + "\n").encode())
            os._exit(code)
        pids.append(pid)
    os.close(w)
    for pid in pids:
        os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        results = [json.loads(line) for line in f.read().splitlines()]
    assert len(results) == n and all("ok" in x for x in results), results
    return [x["ok"] for x in results]


def test_forked_workers_adopt_the_parents_token_and_heal_once_between_them(org, tmp_path):
    m = manager_for(org, grant="jwt_bearer", store="file", store_path=str(tmp_path / "tokens.enc"),
                    cache_key=base64.b64encode(os.urandom(32)).decode())
    parent = m.token()
    assert org.token_requests() == 1

    # Each worker's first call builds its runtime and adopts the stored token: no request.
    seen = in_children(3, lambda i: [m.token().generation, m.token().fingerprint])
    assert seen == [[1, parent.fingerprint]] * 3
    assert org.token_requests() == 1

    # The session dies; every worker sees its 401: one token request between all of them.
    org.user("logout")

    def heal(i):
        # What a worker's call does: a 401 for the dead token (generation 1) invalidates it.
        if m.token().generation == 1:
            m.invalidate_if_current(1, "rest")
        return m.token().generation

    assert in_children(3, heal) == [2, 2, 2]
    assert org.token_requests() == 2

    # The parent's own runtime still works, and adopts what a child stored.
    assert m.invalidate_if_current(parent.generation, "rest")
    assert m.token().generation == 2
    assert org.token_requests() == 2


def test_a_forked_worker_with_the_memory_store_gets_its_own_token(org):
    m = manager_for(org)
    m.token()
    assert org.token_requests() == 1
    # Memory is per process: the child cannot adopt, so it asks (and its runtime works).
    assert in_children(1, lambda i: m.token().generation) == [1]
    assert org.token_requests() == 2
    assert m.token().generation == 1
