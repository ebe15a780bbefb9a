#!/usr/bin/env python3
"""The baseline for `scripts/bench sync`: what a Python integration does today.

simple-salesforce `query_all` of the same fields, then `sqlite3` `executemany` into a fresh
table. Environment: SF_URL, SF_USERNAME, SF_PASSWORD, SF_SECURITY_TOKEN, BENCH_DB.
Prints one JSON line: {"records": n, "seconds": s}.
"""

import json
import os
import sqlite3
import time
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce

FIELDS = ["Id", "Name", "AccountNumber", "Industry", "AnnualRevenue", "BillingCity", "SystemModstamp"]


class HttpRewriteAdapter(HTTPAdapter):
    """simple-salesforce hard-codes https://; send its requests to the plain-http org."""

    def __init__(self, target, **kw):
        self.t = urlsplit(target)
        super().__init__(**kw)

    def send(self, request, **kw):
        p = urlsplit(request.url)
        request.url = urlunsplit((self.t.scheme, self.t.netloc, p.path, p.query, p.fragment))
        return super().send(request, **kw)


def main():
    target = os.environ["SF_URL"]
    s = requests.Session()
    s.mount("https://", HttpRewriteAdapter(target))
    start = time.monotonic()
    sf = Salesforce(
        username=os.environ["SF_USERNAME"],
        password=os.environ["SF_PASSWORD"],
        security_token=os.environ["SF_SECURITY_TOKEN"],
        session=s,
    )
    rows = sf.query_all("SELECT " + ", ".join(FIELDS) + " FROM Account")["records"]
    db = sqlite3.connect(os.environ["BENCH_DB"])
    db.execute("CREATE TABLE accounts (id TEXT PRIMARY KEY, name TEXT, system_modstamp TEXT, record TEXT)")
    db.executemany(
        "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?)",
        ((r["Id"], r["Name"], r["SystemModstamp"], json.dumps({k: r.get(k) for k in FIELDS})) for r in rows),
    )
    db.commit()
    print(json.dumps({"records": len(rows), "seconds": time.monotonic() - start}))


if __name__ == "__main__":
    main()
