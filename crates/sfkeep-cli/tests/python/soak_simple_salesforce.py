#!/usr/bin/env python3
"""simple-salesforce through `sfkeep proxy` for the soak (crates/sfkeep-cli/tests/soak.rs).

Environment: PROXY_URL, SF_USERNAME, SF_PASSWORD, SOAK_SECONDS, SOAK_STOP_FILE (stop early
when it exists), SOAK_READY_FILE (created after the first successful login, so the soak starts
its chaos only once this client is running), SOAK_PAUSE_FILE and SOAK_IDLE_FILE (an idle gap:
while the pause file exists the client makes no call, and it writes the pause file's content
into the idle file once it is quiet). Logs in with SOAP login() (answered by the proxy's
shim) inside the loop — a login that fails is a failure like any other, with its time, and is
tried again — then queries until the time is up. Each failure is classified by what the client
raised. Prints one JSON
line: {"calls", "ok", "failures": {class: n}, "samples": [...], "unrecoverable_windows_hit"}.
The soak decides which failures were expected (during a frozen-user window).
"""

import json
import os
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce


class HttpRewriteAdapter(HTTPAdapter):
    def __init__(self, target, **kw):
        self.t = urlsplit(target)
        super().__init__(**kw)

    def send(self, request, **kw):
        p = urlsplit(request.url)
        request.url = urlunsplit((self.t.scheme, self.t.netloc, p.path, p.query, p.fragment))
        if kw.get("timeout") is None:
            kw["timeout"] = 30
        return super().send(request, **kw)


def wait_out_idle_gap(pause_file, idle_file, stop_file):
    try:
        with open(pause_file) as f:
            gap = f.read()
    except FileNotFoundError:
        return
    with open(idle_file + ".tmp", "w") as f:
        f.write(gap)
    os.replace(idle_file + ".tmp", idle_file)
    while os.path.exists(pause_file) and not (stop_file and os.path.exists(stop_file)):
        time.sleep(0.01)


def main():
    env = os.environ
    proxy = env["PROXY_URL"].rstrip("/")
    deadline = time.monotonic() + float(env.get("SOAK_SECONDS", "10"))
    stop_file = env.get("SOAK_STOP_FILE", "")
    session = requests.Session()
    session.mount("https://", HttpRewriteAdapter(proxy))
    out = {"calls": 0, "ok": 0, "failures": {}, "samples": [], "failure_times": [], "transient": 0}
    ready_file = env.get("SOAK_READY_FILE", "")
    sf = None
    t0 = time.time()
    pause_file = env.get("SOAK_PAUSE_FILE", "")
    idle_file = env.get("SOAK_IDLE_FILE", "")
    while time.monotonic() < deadline and not (stop_file and os.path.exists(stop_file)):
        if pause_file and os.path.exists(pause_file):
            wait_out_idle_gap(pause_file, idle_file, stop_file)
            continue
        out["calls"] += 1
        try:
            if sf is None:
                sf = Salesforce(username=env["SF_USERNAME"], password=env["SF_PASSWORD"],
                                security_token="", session=session)
                if ready_file:
                    open(ready_file, "w").close()
            res = sf.query("SELECT Id, Name FROM Account LIMIT 5")
            if res.get("records"):
                out["ok"] += 1
            else:
                out["failures"]["empty_result"] = out["failures"].get("empty_result", 0) + 1
        except Exception as e:  # noqa: BLE001 - classify whatever the client raised
            text = str(e)
            injected = ("Error Code 503" in text or "Error Code 429" in text
                        or "SFKEEP_UPSTREAM_ERROR" in text)
            if injected and "SFKEEP_NO_TOKEN" not in text:
                # An injected 503/429 or connection reset (the proxy answers 502
                # SFKEEP_UPSTREAM_ERROR): the proxy passes these through (it replays only
                # session deaths) and simple-salesforce does not retry.
                out["transient"] += 1
                time.sleep(0.05)
                continue
            cls = type(e).__name__
            out["failures"][cls] = out["failures"].get(cls, 0) + 1
            out["failure_times"].append(round(time.time() - t0, 3))
            if len(out["samples"]) < 5:
                out["samples"].append(f"{cls}: {str(e)[:200]}")
            time.sleep(0.05)
    out["started_unix"] = t0
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
