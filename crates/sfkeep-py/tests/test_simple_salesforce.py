"""sfkeep.simple_salesforce.connect against the simulated org: a real simple-salesforce
(from PyPI) whose REST, Bulk 2.0 and Bulk calls heal in-process."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sfkeep
import sfkeep.simple_salesforce
from conftest import manager_for, wait_for

WORKER = Path(__file__).parent / "workers" / "fleet_worker.py"


def test_rest_calls_heal_after_a_logout(org):
    sf = sfkeep.simple_salesforce.connect(manager_for(org))
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 20
    org.user("logout")
    before = org.token_requests()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 20
    assert org.token_requests() - before == 1


def test_credentials_for_simple_salesforce_itself_are_refused(org):
    m = manager_for(org)
    with pytest.raises(sfkeep.ConfigError, match="`username`, `password`"):
        sfkeep.simple_salesforce.connect(m, username="u", password="p")
    import requests

    with pytest.raises(sfkeep.ConfigError, match="plain requests.Session cannot heal"):
        sfkeep.simple_salesforce.connect(m, session=requests.Session())


def test_a_body_simple_salesforce_cannot_send_is_its_own_type_error(org):
    sf = sfkeep.simple_salesforce.connect(manager_for(org))
    before = org.stats()["api_requests"]
    with pytest.raises(TypeError, match="not JSON serializable"):
        sf.Account.create({"Name": object()})
    assert org.stats()["api_requests"] == before
    # The interpreter and the manager are fine.
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 20


def test_a_bulk2_query_survives_a_logout_between_job_creation_and_the_download(org):
    sf = sfkeep.simple_salesforce.connect(manager_for(org))
    logged_out = []

    def logout_when_the_job_is_done(r, *args, **kwargs):
        # The job's status answer says JobComplete: the next request is the result download.
        if (not logged_out and r.request.method == "GET"
                and re.search(r"/jobs/query/[^/]+$", r.request.path_url.split("?")[0])
                and r.status_code == 200 and r.json().get("state") == "JobComplete"):
            org.user("logout")
            logged_out.append(org.stats())

    sf.session.hooks["response"].append(logout_when_the_job_is_done)
    pages = list(sf.bulk2.Account.query("SELECT Id, Name FROM Account", wait=1))
    rows = [line for page in pages for line in page.splitlines()[1:] if line]
    assert len(rows) == 20
    assert logged_out, "the job never completed"
    after = org.stats()
    assert after["invalid_session_responses"] - logged_out[0]["invalid_session_responses"] == 1
    assert sum(after["token_requests"].values()) - sum(logged_out[0]["token_requests"].values()) == 1


def test_bulk1_calls_heal_too(org):
    sf = sfkeep.simple_salesforce.connect(manager_for(org))
    assert len(sf.bulk.Account.query("SELECT Id FROM Account")) == 20
    org.user("logout")
    before = org.token_requests()
    assert len(sf.bulk.Account.query("SELECT Id FROM Account")) == 20
    assert org.token_requests() - before == 1


def test_a_frozen_user_is_reauth_required_after_one_token_request_then_silence(org, captured):
    m = manager_for(org)
    sf = sfkeep.simple_salesforce.connect(m)
    sf.query("SELECT COUNT() FROM Account")
    org.user("freeze")
    before = org.token_requests()
    errors = []
    for _ in range(20):
        with pytest.raises(sfkeep.ReauthRequired) as e:
            sf.query("SELECT COUNT() FROM Account")
        errors.append(e.value)
    captured.add(*errors)
    assert {(x.cause, x.token_error) for x in errors} == {("user_frozen", "authentication_failure")}
    assert "unfreeze" in errors[0].fix.lower(), errors[0].fix
    # One token request found out; the cooldown kept the other 19 calls silent.
    assert org.token_requests() - before == 1
    assert m.status().state == "reauth_required"


DEATHS = [
    ("session_timeout", lambda org: org.admin("POST", "/clock/advance", {"seconds": 2 * 3600 + 60})),
    ("logged_out_elsewhere", lambda org: org.user("logout")),
    ("password_changed", lambda org: org.user("password", {"password": f"New-{time.monotonic_ns()}"})),
    ("app_tokens_revoked", lambda org: org.admin("POST", f"/apps/{org['client_id']}/revoke")),
]


def test_four_processes_of_sixteen_threads_through_ten_deaths(org, tmp_path, captured):
    """4 × 16 threads of queries and upserts (simple-salesforce through connect, one shared
    encrypted file store) through 10 session deaths of every recoverable cause: no
    exception, one token request per death (+ the first), every upsert in the org once."""
    stop = tmp_path / "stop"
    epoch_file, acks = tmp_path / "epoch", tmp_path / "acks"
    acks.mkdir()
    env = dict(
        os.environ,
        SF_LOGIN_URL=org["login_url"], SF_CLIENT_ID=org["client_id"], SF_USERNAME=org["username"],
        SF_JWT_KEY_FILE=org["jwt_key_file"], SF_STORE_PATH=str(tmp_path / "tokens.enc"),
        SF_CACHE_KEY=base64.b64encode(os.urandom(32)).decode(), THREADS="16", STOP_FILE=str(stop),
        EPOCH_FILE=str(epoch_file), ACK_DIR=str(acks),
    )

    def every_thread_on_the_current_token(epoch: int) -> None:
        # Not a count of calls: the calls that died would satisfy it, and the next death could
        # land on a process that has not healed from this one (its replay would meet a second
        # death, which no client survives). Every thread of every worker completes a call begun
        # after this point (the workers' epochs, fleet_worker.py).
        tmp = epoch_file.with_suffix(".tmp")
        tmp.write_text(str(epoch))
        tmp.replace(epoch_file)
        wait_for(f"every thread past epoch {epoch}",
                 lambda: all((acks / f"{w}-{epoch}").exists() for w in range(4)), timeout=120)

    start_accounts = org.stats()["records"]["Account"]
    workers = [
        subprocess.Popen([sys.executable, str(WORKER)], env=dict(env, WORKER=str(w)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(4)
    ]
    per_death = []
    try:
        wait_for("the first token", lambda: org.token_requests() == 1)
        for death in range(10):
            every_thread_on_the_current_token(death + 1)
            per_death.append(org.token_requests())
            _, kill = DEATHS[death % len(DEATHS)]
            kill(org)
            wait_for(f"the token request after death {death + 1}",
                     lambda: org.token_requests() >= death + 2, timeout=120)
        every_thread_on_the_current_token(11)
    finally:
        stop.touch()
        outs = [w.communicate(timeout=300) for w in workers]
    results = []
    for (out, err), w in zip(outs, workers):
        assert w.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    exceptions = [e for r in results for e in r["exceptions"]]
    captured.add(*exceptions)
    assert exceptions == []
    assert org.token_requests() == 1 + 10, (per_death, org.stats()["token_requests"], org.stats().get("token_errors"))
    written = [x for r in results for x in r["written"]]
    assert len(written) == len(set(written))
    rows = sfkeep.simple_salesforce.connect(manager_for(org, grant="jwt_bearer")).query_all("SELECT Id, ExtId__c FROM Account")["records"]
    in_org = [r["ExtId__c"] for r in rows if (r.get("ExtId__c") or "").startswith("W")]
    assert sorted(in_org) == sorted(written)
    assert org.stats()["records"]["Account"] == start_accounts + len(written)

