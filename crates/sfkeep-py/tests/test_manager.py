"""sfkeep.TokenManager against the simulated org: tokens, single-flight, status, bad input."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sfkeep
from conftest import manager_for, wait_for


def test_token_has_what_a_call_needs_and_repr_shows_no_secret(org, captured):
    m = manager_for(org)
    t = m.token()
    captured.add(t, m, m.status())
    assert t.instance_url == org["instance_url"]
    assert t.generation == 1
    assert t.expires_at > 0
    assert len(t.fingerprint) == 8
    assert t.access_token not in repr(t) and t.access_token not in str(t)
    assert t.fingerprint in repr(t)
    s = m.status()
    assert (s.state, s.generation, s.store) == ("fresh", 1, "memory")
    assert org.stats()["token_requests"]["refresh_token"] == 1


def test_sixty_four_threads_after_a_death_cause_one_token_request(org):
    m = manager_for(org)
    first = m.token()
    org.user("logout")
    before = org.token_requests()

    def after_401(_):
        # Every thread saw the 401 of the same token.
        m.invalidate_if_current(first.generation, "rest")
        return m.token().generation

    with ThreadPoolExecutor(64) as pool:
        generations = set(pool.map(after_401, range(64)))
    assert generations == {2}
    assert org.token_requests() - before == 1


def test_auth_events_are_logging_records_on_sfkeep_auth(org, caplog):
    caplog.set_level(logging.INFO, logger="sfkeep.auth")
    m = manager_for(org)
    t = m.token()
    assert m.invalidate_if_current(t.generation, "rest")
    m.token()
    # Events reach `logging` from the wheel's delivery thread: a record may land just after
    # token() returned, so the test waits for the condition, not for token().
    def events():
        return [r.sfkeep_event for r in caplog.records if r.name == "sfkeep.auth"]
    wait_for("three auth events", lambda: len(events()) >= 3, timeout=30)
    assert events() == ["token.refreshed", "token.invalidated", "token.refreshed"], events()
    refreshed = [r for r in caplog.records if getattr(r, "sfkeep_event", "") == "token.refreshed"]
    assert refreshed[0].sfkeep_generation == 1 and refreshed[0].sfkeep_grant == "refresh_token"
    assert refreshed[1].sfkeep_fingerprint == m.token().fingerprint


def test_bad_keywords_are_config_errors_that_name_the_keyword():
    with pytest.raises(sfkeep.ConfigError, match="jwt_bearer grant needs the keyword argument `username`"):
        sfkeep.TokenManager(login_url="https://login.salesforce.com", grant="jwt_bearer", client_id="x")
    with pytest.raises(sfkeep.ConfigError, match='unknown grant "magic"'):
        sfkeep.TokenManager(login_url="https://login.salesforce.com", grant="magic")
    with pytest.raises(ValueError, match="store_path"):
        sfkeep.TokenManager(login_url="https://login.salesforce.com", client_id="x", refresh_token="r",
                            store="file", cache_key=base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(sfkeep.ConfigError, match="cache_key"):
        sfkeep.TokenManager(login_url="https://login.salesforce.com", client_id="x", refresh_token="r",
                            store="file", store_path="/tmp/x", cache_key="not base64!")
    # Plain http is for loopback only.
    with pytest.raises(sfkeep.ConfigError, match="http"):
        sfkeep.TokenManager(login_url="http://login.example.com", client_id="x", refresh_token="r")


def test_a_store_written_with_another_key_is_an_error_naming_the_store(org, tmp_path, captured):
    path = tmp_path / "tokens.enc"
    one, other = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
    manager_for(org, store="file", store_path=str(path), cache_key=one).token()
    with pytest.raises(sfkeep.StoreUnavailable) as e:
        manager_for(org, store="file", store_path=str(path), cache_key=other)
    captured.add(e.value)
    assert str(path) in str(e.value) and "different cache key" in str(e.value), str(e.value)


class _Refuses(http.server.BaseHTTPRequestHandler):
    """A token endpoint whose answer lacks instance_url: the library must refuse it."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "00Dxx0000001gPL!AQ4AQFakeTokenValue", "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def test_a_token_response_the_library_refuses_is_an_exception_without_the_token(captured):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        m = sfkeep.TokenManager(login_url=f"http://127.0.0.1:{server.server_port}", client_id="x",
                                refresh_token="5Aep861NotARealRefreshTokenValue")
        with pytest.raises(sfkeep.SfkeepError) as e:
            m.token()
        captured.add(e.value)
        assert "instance_url" in str(e.value), str(e.value)
        assert "FakeTokenValue" not in str(e.value) and "FakeTokenValue" not in repr(e.value)
    finally:
        server.shutdown()


def test_exceptions_survive_pickling_with_their_attributes():
    import pickle

    e = sfkeep.ReauthRequired("re-authentication required", cause="user_frozen", fix="unfreeze", detail="d",
                              token_error="authentication_failure", retryable=False)
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.cause, back.fix, str(back)) == (sfkeep.ReauthRequired, "user_frozen", "unfreeze",
                                                             "re-authentication required")
