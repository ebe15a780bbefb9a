#!/usr/bin/env python3
"""The floor for `scripts/bench sync`: the same Bulk 2.0 query job sfkeep's initial load runs,
with nothing done to the results.

Standard library only (http.client, one keep-alive connection): one OAuth password-grant token
request, the job created with sfkeep's default field list, its state read every 10 ms until
`JobComplete`, then every results page (`maxRecords` as sfkeep asks, `Sforce-Locator`) read
and dropped: no CSV parsing, no database. Environment: SF_URL (login and instance URL of the
simulated org), SF_CLIENT_ID, SF_CLIENT_SECRET, SF_USERNAME, SF_PASSWORD, SF_SECURITY_TOKEN,
optional SF_MAX_RECORDS (default 10000) and SF_API (default 59.0).
Prints one JSON line: {"bytes": n, "pages": p, "polls": k, "seconds": s} (s from the token
request to the last page).
"""

import http.client
import json
import os
import time
from urllib.parse import urlencode, urlsplit, quote

SOQL = "SELECT Id, SystemModstamp, Name, AccountNumber, Industry, AnnualRevenue, BillingCity FROM Account"


def main():
    url = urlsplit(os.environ["SF_URL"])
    conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(url.hostname, url.port)
    api = os.environ.get("SF_API", "59.0")
    max_records = os.environ.get("SF_MAX_RECORDS", "10000")
    start = time.monotonic()

    def call(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
        return r, data

    form = urlencode({
        "grant_type": "password",
        "client_id": os.environ["SF_CLIENT_ID"],
        "client_secret": os.environ["SF_CLIENT_SECRET"],
        "username": os.environ["SF_USERNAME"],
        "password": os.environ["SF_PASSWORD"] + os.environ.get("SF_SECURITY_TOKEN", ""),
    })
    _, data = call("POST", "/services/oauth2/token", form,
                   {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    auth = {"Authorization": "Bearer " + json.loads(data)["access_token"]}
    base = f"/services/data/v{api}/jobs/query"
    _, data = call("POST", base, json.dumps({"operation": "query", "query": SOQL}),
                   dict(auth, **{"Content-Type": "application/json"}))
    job = json.loads(data)["id"]
    polls = 0
    while True:
        polls += 1
        _, data = call("GET", f"{base}/{job}", headers=auth)
        state = json.loads(data)["state"]
        if state == "JobComplete":
            break
        if state in ("Failed", "Aborted"):
            raise SystemExit(f"job {job} {state}")
        time.sleep(0.01)
    pages = 0
    size = 0
    locator = None
    while True:
        path = f"{base}/{job}/results?maxRecords={max_records}"
        if locator:
            path += "&locator=" + quote(locator)
        r, data = call("GET", path, headers=auth)
        pages += 1
        size += len(data)
        locator = r.getheader("Sforce-Locator")
        if not locator or locator == "null":
            break
    print(json.dumps({"bytes": size, "pages": pages, "polls": polls,
                      "seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main()
