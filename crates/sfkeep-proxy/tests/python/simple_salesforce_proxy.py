#!/usr/bin/env python3
"""simple-salesforce (real, 1.12.10) through `sfkeep proxy` while the org kills the session.

Environment:
  PROXY_URL         http://127.0.0.1:PORT of the proxy (login and instance URL for the client)
  SF_USERNAME       the profile's username (the proxy's SOAP login shim checks it)
  SF_PASSWORD       what the client sends as its password (the client key, if the proxy has one)
  SF_ADMIN_URL      http://127.0.0.1:PORT/_fake of the simulated org
  SF_CLIENT_ID      the connected app whose tokens the admin revokes
  SF_SESSION_TIMEOUT_SECS  the org's session timeout (the clock is advanced past it)
  SF_QUERIES        total queries (default 1000)
  SF_TIMEOUT        per-request timeout in seconds (default 30)
  SF_API_VERSION    the client's API version (default: simple-salesforce's own)
  SF_DIRECT_URL, SF_DIRECT_PASSWORD
                    when set, first try the same SOAP login directly against the org (the
                    password with its security token appended) and report what happened

The client logs in with SOAP username/password (answered by the proxy's shim) and runs
SF_QUERIES queries in batches; between batches this script kills the session at the org
(timeout, logout, password change, admin revoke, in turn). Prints exactly one JSON line and
exits 0 when there was no exception and no 401 reached the client, 1 otherwise.
"""

import json
import os
import secrets
import sys
import traceback
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce


class HttpRewriteAdapter(HTTPAdapter):
    """Send every https:// request to the plain-http proxy (docs/real-clients.md#simple-salesforce-python)."""

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


def main():
    env = os.environ
    required = ["PROXY_URL", "SF_USERNAME", "SF_PASSWORD", "SF_ADMIN_URL", "SF_CLIENT_ID",
                "SF_SESSION_TIMEOUT_SECS"]
    missing = [k for k in required if not env.get(k)]
    if missing:
        print(json.dumps({"ok": False, "error": "missing environment: " + ", ".join(missing)}))
        return 2
    proxy = env["PROXY_URL"].rstrip("/")
    admin = env["SF_ADMIN_URL"].rstrip("/")
    username = env["SF_USERNAME"]
    total = int(env.get("SF_QUERIES", "1000"))
    timeout = float(env.get("SF_TIMEOUT", "30"))
    advance = int(env["SF_SESSION_TIMEOUT_SECS"]) + 60
    user_path = quote(username, safe="@")

    def kill(kind):
        if kind == "timeout":
            r = requests.post(f"{admin}/clock/advance", json={"seconds": advance}, timeout=timeout)
        elif kind == "logout":
            r = requests.post(f"{admin}/users/{user_path}/logout", json={}, timeout=timeout)
        elif kind == "password":
            r = requests.post(f"{admin}/users/{user_path}/password",
                              json={"password": "New-" + secrets.token_hex(8)}, timeout=timeout)
        elif kind == "revoke":
            r = requests.post(f"{admin}/apps/{quote(env['SF_CLIENT_ID'], safe='')}/revoke",
                              json={}, timeout=timeout)
        else:
            raise ValueError(kind)
        return r.status_code

    schedule = ["timeout", "logout", "password", "revoke"]
    batches = len(schedule) + 1
    out = {"ok": False, "queries": 0, "exceptions": 0, "errors": [], "kills": []}
    log = []
    session = requests.Session()
    session.mount("https://", HttpRewriteAdapter(proxy, log, timeout))
    extra = {"version": env["SF_API_VERSION"]} if env.get("SF_API_VERSION") else {}
    if env.get("SF_DIRECT_URL"):
        direct = requests.Session()
        direct.mount("https://", HttpRewriteAdapter(env["SF_DIRECT_URL"], [], timeout))
        try:
            Salesforce(username=username, password=env["SF_DIRECT_PASSWORD"], security_token="",
                       session=direct, **extra)
            out["direct_login"] = "ok"
        except Exception as e:  # noqa: BLE001 - report what the client raised
            out["direct_login"] = f"{type(e).__name__}: {str(e)[:300]}"
    try:
        sf = Salesforce(username=username, password=env["SF_PASSWORD"], security_token="",
                        session=session, **extra)
    except Exception as e:  # noqa: BLE001
        out["errors"].append(f"login: {type(e).__name__}: {e}")
        print(json.dumps(out))
        return 1
    out["sf_instance"] = sf.sf_instance
    done = 0
    for b in range(batches):
        n = total // batches + (1 if b < total % batches else 0)
        for _ in range(n):
            try:
                res = sf.query("SELECT Id, Name FROM Account LIMIT 5")
                if not res.get("records"):
                    out["errors"].append("a query returned no records")
            except Exception as e:  # noqa: BLE001 - count whatever the client raised
                out["exceptions"] += 1
                if len(out["errors"]) < 5:
                    out["errors"].append(f"{type(e).__name__}: {str(e)[:300]}")
            done += 1
        if b < len(schedule):
            out["kills"].append({"after": done, "kind": schedule[b], "status": kill(schedule[b])})
    out["queries"] = done
    statuses = {}
    for _, _, s in log:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    out["statuses"] = statuses
    out["soap_logins"] = sum(1 for m, p, _ in log if m == "POST" and "/services/Soap/" in p)
    out["ok"] = (out["exceptions"] == 0 and not out["errors"] and done == total
                 and set(statuses) == {"200"})
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 - one JSON line, whatever happens
        print(json.dumps({"ok": False, "error": traceback.format_exc(limit=3)}))
        sys.exit(1)
