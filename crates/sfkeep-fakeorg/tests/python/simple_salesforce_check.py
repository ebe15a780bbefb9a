#!/usr/bin/env python3
"""Drive the simulated org with the real simple-salesforce client (1.12.10).

Environment:
  SF_URL                http://127.0.0.1:PORT (login and instance URL of the simulated org)
  SF_USERNAME           integration user
  SF_PASSWORD           its password
  SF_SECURITY_TOKEN     its security token (appended to the password by simple-salesforce)
  SF_ADMIN_URL          http://127.0.0.1:PORT/_fake
  SF_EXPECTED_ACCOUNTS  number of Account records the org holds
  SF_API_VERSION        optional; simple-salesforce's default (59.0) otherwise
  SF_TIMEOUT            optional per-request timeout in seconds (default 30)

Checks, in order:
  1. SOAP login with username + password + security token (credentials mode);
  2. query_all("SELECT Id, Name FROM Account") returns every record across pages;
  3. a direct-mode client (instance_url + session_id) works, then after
     POST {SF_ADMIN_URL}/users/{username}/logout it raises SalesforceExpiredSession;
  4. the credentials-mode client heals by itself (a new SOAP login) and queries again.

Prints exactly one JSON line with the results on stdout and exits 0 when every check passed,
1 when one failed, 2 on bad usage. Never prints the password, token or session ids.
"""

import json
import os
import sys
import traceback
from importlib.metadata import version
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession


class HttpRewriteAdapter(HTTPAdapter):
    """Send every https:// request simple-salesforce makes to the plain-http target
    (scheme + host + port replaced; path and query kept), and log what was sent.
    docs/real-clients.md#simple-salesforce-python."""

    def __init__(self, target, log, timeout, **kw):
        self.t = urlsplit(target)
        self.log = log
        self.timeout = timeout
        super().__init__(**kw)

    def send(self, request, **kw):
        p = urlsplit(request.url)
        request.url = urlunsplit((self.t.scheme, self.t.netloc, p.path, p.query, p.fragment))
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        response = super().send(request, **kw)
        self.log.append((request.method, p.path, response.status_code))
        return response


def local_session(target, log, timeout):
    s = requests.Session()
    s.mount("https://", HttpRewriteAdapter(target, log, timeout))
    return s


def soap_logins(log):
    return sum(1 for m, path, _ in log if m == "POST" and "/services/Soap/u/" in path)


def query_gets(log):
    return sum(1 for m, path, _ in log if m == "GET" and "/query" in path)


def main():
    required = ["SF_URL", "SF_USERNAME", "SF_PASSWORD", "SF_SECURITY_TOKEN", "SF_ADMIN_URL",
                "SF_EXPECTED_ACCOUNTS"]
    missing = [k for k in required if not os.environ.get(k)]
    # The token may legitimately be empty (trusted IP ranges), so only its absence counts.
    if "SF_SECURITY_TOKEN" in missing and "SF_SECURITY_TOKEN" in os.environ:
        missing.remove("SF_SECURITY_TOKEN")
    if missing:
        print(json.dumps({"ok": False, "error": "missing environment: " + ", ".join(missing)}))
        return 2
    url = os.environ["SF_URL"].rstrip("/")
    admin = os.environ["SF_ADMIN_URL"].rstrip("/")
    username = os.environ["SF_USERNAME"]
    password = os.environ["SF_PASSWORD"]
    token = os.environ["SF_SECURITY_TOKEN"]
    try:
        expected = int(os.environ["SF_EXPECTED_ACCOUNTS"])
        timeout = float(os.environ.get("SF_TIMEOUT", "30"))
    except ValueError as e:
        print(json.dumps({"ok": False, "error": f"bad number in environment: {e}"}))
        return 2
    extra = {}
    if os.environ.get("SF_API_VERSION"):
        extra["version"] = os.environ["SF_API_VERSION"]

    secrets = [s for s in (password, token, password + token) if s]
    out = {
        "ok": False,
        "simple_salesforce": version("simple-salesforce"),
        "steps": {},
        "failures": [],
    }

    def fail(step, message):
        for s in secrets:
            message = message.replace(s, "<redacted>")
        out["failures"].append(f"{step}: {message}")

    def check(step, cond, message):
        if not cond:
            fail(step, message)
        return cond

    log = []  # (method, path, status) of every request the credentials-mode client made

    # 1. SOAP login, credentials mode.
    try:
        sf = Salesforce(username=username, password=password, security_token=token,
                        session=local_session(url, log, timeout), **extra)
        out["steps"]["login"] = {"soap_logins": soap_logins(log), "sf_instance": sf.sf_instance}
        check("login", soap_logins(log) == 1, f"expected 1 SOAP login, saw {soap_logins(log)}")
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail("login", f"{type(e).__name__}: {e}")
        print(json.dumps(out))
        return 1

    # 2. query_all across pages.
    try:
        before = query_gets(log)
        res = sf.query_all("SELECT Id, Name FROM Account")
        records = res.get("records", [])
        ids = [r.get("Id") for r in records]
        step = {
            "total_size": res.get("totalSize"),
            "records": len(records),
            "unique_ids": len(set(ids)),
            "pages": query_gets(log) - before,
            "done": res.get("done"),
        }
        out["steps"]["query_all"] = step
        check("query_all", step["records"] == expected,
              f"got {step['records']} records, expected {expected}")
        check("query_all", step["total_size"] == expected,
              f"totalSize {step['total_size']}, expected {expected}")
        check("query_all", step["unique_ids"] == len(ids), "duplicate Ids across pages")
        check("query_all", all(isinstance(r.get("Name"), str) for r in records),
              "a record has no Name")
        check("query_all", all(r.get("attributes", {}).get("type") == "Account" for r in records),
              "a record's attributes.type is not Account")
    except Exception as e:  # noqa: BLE001
        fail("query_all", f"{type(e).__name__}: {e}")

    # 3. Direct mode: works, then dies with SalesforceExpiredSession after an admin logout.
    direct_log = []
    try:
        direct = Salesforce(instance_url=url, session_id=sf.session_id,
                            session=local_session(url, direct_log, timeout), **extra)
        first = direct.query("SELECT Id FROM Account LIMIT 1")
        step = {"before_logout_records": len(first.get("records", []))}
        out["steps"]["direct"] = step
        resp = requests.post(f"{admin}/users/{quote(username, safe='@')}/logout", json={},
                             timeout=timeout)
        step["admin_logout_status"] = resp.status_code
        check("direct", 200 <= resp.status_code < 300,
              f"admin logout returned HTTP {resp.status_code}")
        try:
            direct.query("SELECT Id FROM Account LIMIT 1")
            step["raised"] = None
            fail("direct", "query after logout succeeded; expected SalesforceExpiredSession")
        except SalesforceExpiredSession as e:
            step["raised"] = type(e).__name__
            step["status"] = e.status
            content = e.content
            if isinstance(content, list) and content and isinstance(content[0], dict):
                step["error_code"] = content[0].get("errorCode")
                step["message"] = content[0].get("message")
            check("direct", e.status == 401, f"status {e.status}, expected 401")
            check("direct", step.get("error_code") == "INVALID_SESSION_ID",
                  f"errorCode {step.get('error_code')!r}, expected 'INVALID_SESSION_ID'")
        check("direct", soap_logins(direct_log) == 0, "direct mode must never log in")
    except Exception as e:  # noqa: BLE001
        fail("direct", f"{type(e).__name__}: {e}")

    # 4. Credentials mode heals: 401 INVALID_SESSION_ID -> SOAP re-login -> retried query.
    try:
        old_session = sf.session_id
        logins_before = soap_logins(log)
        res = sf.query("SELECT Id, Name FROM Account LIMIT 5")
        records = res.get("records", [])
        statuses = [s for m, p, s in log[-4:]]
        step = {
            "relogins": soap_logins(log) - logins_before,
            "session_changed": sf.session_id != old_session,
            "records": len(records),
            "last_statuses": statuses,
        }
        out["steps"]["heal"] = step
        check("heal", step["relogins"] == 1, f"expected 1 SOAP re-login, saw {step['relogins']}")
        check("heal", step["session_changed"], "session id did not change after re-login")
        check("heal", step["records"] == min(5, expected),
              f"got {step['records']} records, expected {min(5, expected)}")
    except Exception as e:  # noqa: BLE001
        fail("heal", f"{type(e).__name__}: {e}")

    out["ok"] = not out["failures"]
    print(json.dumps(out, default=str))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - one JSON line, whatever happens
        print(json.dumps({"ok": False, "error": traceback.format_exc(limit=3)}))
        sys.exit(1)
