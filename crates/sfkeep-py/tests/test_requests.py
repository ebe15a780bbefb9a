"""sfkeep.requests against the simulated org: heal once, retry only what is safe."""

from __future__ import annotations

import requests

import sfkeep
import sfkeep.requests
from conftest import manager_for

V = "v59.0"


def url(org, path):
    return f"{org['instance_url']}/services/data/{V}{path}"


def count_accounts(org, s):
    return s.get(url(org, "/query"), params={"q": "SELECT COUNT() FROM Account"}).json()["totalSize"]


def test_auth_base_injects_the_current_token(org):
    m = manager_for(org)
    r = requests.get(url(org, "/limits"), auth=sfkeep.requests.SfkeepAuth(m), timeout=30)
    assert r.status_code == 200, r.text


def test_a_dead_session_is_healed_once_with_one_token_request(org):
    m = manager_for(org)
    s = sfkeep.requests.session(m)
    assert s.get(url(org, "/limits")).status_code == 200
    org.user("logout")
    before = org.stats()
    r = s.get(url(org, "/limits"))
    after = org.stats()
    assert r.status_code == 200, r.text
    assert after["invalid_session_responses"] - before["invalid_session_responses"] == 1
    assert sum(after["token_requests"].values()) - sum(before["token_requests"].values()) == 1


def test_a_post_is_replayed_after_a_dead_session_but_not_after_a_transient_failure(org):
    m = manager_for(org)
    s = sfkeep.requests.session(m)
    start = count_accounts(org, s)
    # A 401 means the org did not run the call: the POST is replayed once, and creates once.
    org.user("logout")
    r = s.post(url(org, "/sobjects/Account"), json={"Name": "after logout"})
    assert r.status_code == 201, r.text
    assert count_accounts(org, s) == start + 1
    # A 503 may come after the org ran it: never replayed; the caller gets the 503.
    org.admin("POST", "/faults", {"path_prefix": f"/services/data/{V}/sobjects/Account", "status": 503, "count": 1})
    r = s.post(url(org, "/sobjects/Account"), json={"Name": "during an outage"})
    assert r.status_code == 503
    assert count_accounts(org, s) == start + 1


def test_a_get_rides_out_transient_failures(org):
    s = sfkeep.requests.session(manager_for(org), retry=sfkeep._native.RetryPolicy(base=0.01))
    org.admin("POST", "/faults", {"path_prefix": f"/services/data/{V}/limits", "status": 503, "count": 2})
    r = s.get(url(org, "/limits"))
    assert r.status_code == 200, r.text
    # Both injected 503s were answered (the org counts down what it sent), then the third try passed.
    assert all(f.get("count", 0) == 0 for f in org.admin("GET", "/faults")["faults"]), org.admin("GET", "/faults")


def test_an_unfixable_401_is_returned_without_a_token_request(org):
    # Tokens issued from now on lack the `api` scope.
    org.admin("PUT", f"/apps/{org['client_id']}/policy", {"api_scope": False})
    m = manager_for(org)
    s = sfkeep.requests.session(m)
    m.token()
    before = org.token_requests()
    r = s.get(url(org, "/limits"))
    assert r.status_code == 401
    assert "not valid for use with the REST API" in r.text
    assert org.token_requests() == before


def test_a_soap_call_heals_the_fault_with_a_new_session_in_the_envelope(org):
    m = manager_for(org)
    s = sfkeep.requests.session(m)
    envelope = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:urn="urn:partner.soap.sforce.com">'
        "<soapenv:Header><urn:SessionHeader><urn:sessionId>STALE</urn:sessionId></urn:SessionHeader></soapenv:Header>"
        "<soapenv:Body><urn:getUserInfo/></soapenv:Body></soapenv:Envelope>"
    )
    headers = {"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": "getUserInfo"}
    soap = f"{org['instance_url']}/services/Soap/u/59.0"
    assert s.post(soap, data=envelope, headers=headers).status_code == 200
    org.user("logout")
    before = org.stats()
    r = s.post(soap, data=envelope, headers=headers)
    after = org.stats()
    assert r.status_code == 200, r.text
    assert "userName" in r.text
    assert after["invalid_session_responses"] - before["invalid_session_responses"] == 1
    assert sum(after["token_requests"].values()) - sum(before["token_requests"].values()) == 1


def test_token_failures_raise_the_library_exceptions(org):
    m = manager_for(org, fallback_grant=None)
    s = sfkeep.requests.session(m)
    s.get(url(org, "/limits"))
    org.admin("POST", f"/apps/{org['client_id']}/revoke")
    try:
        s.get(url(org, "/limits"))
    except sfkeep.ReauthRequired as e:
        assert e.cause == "app_tokens_revoked", e.cause
        assert e.fix
    else:
        raise AssertionError("no ReauthRequired after the app's tokens were revoked")
