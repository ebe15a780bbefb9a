#!/usr/bin/env python3
"""Drive the simulated org's Bulk APIs and replication calls with real, unmodified clients:
simple-salesforce 1.12.10 and salesforce-bulk 2.2.0 (docs/salesforce-bulk.md).

Environment:
  SF_URL          http://127.0.0.1:PORT (login and instance URL of the simulated org)
  SF_ADMIN_URL    http://127.0.0.1:PORT/_fake
  SF_USERNAME     integration user
  SF_CLIENT_ID    consumer key of the default connected app
  SF_JWT_KEY      path of the PEM private key the app trusts
  SF_TIMEOUT      optional per-request timeout in seconds (default 30)

Checks, in order:
  1. simple-salesforce logs in with the JWT bearer flow (it writes `exp` as a JSON string);
  2. bulk2: insert, upsert by ExtId__c, and query, with the job results it reports;
  3. Bulk API 1.0 (sf.bulk): insert, then query;
  4. Account.updated / Account.deleted over a window holding those changes;
  5. a session death (admin logout): the REST client logs in again by itself, with exactly one
     JWT token request, read from the org's /_fake/stats;
  6. salesforce-bulk: a CSV insert job and a CSV query job with X-SFDC-Session.

Prints exactly one JSON line with the results on stdout and exits 0 when every check passed,
1 when one failed. Never prints the key, tokens or session ids.
"""

import csv
import io
import json
import os
import sys
import time
import traceback
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from salesforce_bulk import SalesforceBulk
from salesforce_bulk.util import IteratorBytesIO
from simple_salesforce import Salesforce


class HttpRewriteAdapter(HTTPAdapter):
    """Send every https:// request simple-salesforce makes to the plain-http org
    (docs/real-clients.md#simple-salesforce-python)."""

    def __init__(self, target, timeout, **kw):
        self.t = urlsplit(target)
        self.timeout = timeout
        super().__init__(**kw)

    def send(self, request, **kw):
        p = urlsplit(request.url)
        request.url = urlunsplit((self.t.scheme, self.t.netloc, p.path, p.query, p.fragment))
        if kw.get("timeout") is None:
            kw["timeout"] = self.timeout
        return super().send(request, **kw)


def stats(admin):
    return requests.get(f"{admin}/stats", timeout=10).json()


def admin_post(admin, path, body):
    r = requests.post(f"{admin}{path}", json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def check(results, name, cond, detail=""):
    results[name] = bool(cond)
    if not cond:
        results.setdefault("failures", []).append(f"{name}: {detail}")


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def main():
    env = {k: os.environ.get(k) for k in ["SF_URL", "SF_ADMIN_URL", "SF_USERNAME", "SF_CLIENT_ID", "SF_JWT_KEY"]}
    missing = [k for k, v in env.items() if not v]
    if missing:
        print(json.dumps({"ok": False, "error": f"missing environment: {missing}"}))
        return 2
    url, admin = env["SF_URL"], env["SF_ADMIN_URL"]
    timeout = float(os.environ.get("SF_TIMEOUT", "30"))
    results = {}
    session = requests.Session()
    session.mount("https://", HttpRewriteAdapter(url, timeout))

    # 1. JWT bearer login; simple-salesforce signs exp as a string of digits.
    before = stats(admin)["token_requests"]["jwt_bearer"]
    sf = Salesforce(username=env["SF_USERNAME"], consumer_key=env["SF_CLIENT_ID"],
                    privatekey_file=env["SF_JWT_KEY"], session=session)
    check(results, "jwt_login", stats(admin)["token_requests"]["jwt_bearer"] == before + 1)

    # 2. Bulk API 2.0 ingest and query.
    stamp = str(int(time.time() * 1000))
    rows = [{"Name": f"Bulk2 {stamp} {i}", "ExtId__c": f"B2-{stamp}-{i}", "AnnualRevenue": 1000 + i}
            for i in range(3)]
    ins = sf.bulk2.Account.insert(records=rows, wait=0.05)
    check(results, "bulk2_insert",
          ins[0]["numberRecordsProcessed"] == 3 and ins[0]["numberRecordsFailed"] == 0, ins)
    ok = csv_rows(sf.bulk2.Account.get_successful_records(ins[0]["job_id"]))
    check(results, "bulk2_successful_results",
          len(ok) == 3 and all(r["sf__Created"] == "true" and r["sf__Id"].startswith("001") for r in ok), ok)
    ups = sf.bulk2.Account.upsert(
        records=[{"ExtId__c": f"B2-{stamp}-0", "Name": f"Bulk2 {stamp} renamed"},
                 {"ExtId__c": f"B2-{stamp}-new", "Name": f"Bulk2 {stamp} new"}],
        external_id_field="ExtId__c", wait=0.05)
    check(results, "bulk2_upsert",
          ups[0]["numberRecordsProcessed"] == 2 and ups[0]["numberRecordsFailed"] == 0, ups)
    created = sorted(r["sf__Created"] for r in csv_rows(sf.bulk2.Account.get_successful_records(ups[0]["job_id"])))
    check(results, "bulk2_upsert_created_flags", created == ["false", "true"], created)
    bad = sf.bulk2.Account.insert(records=[{"Name": ""}], wait=0.05)
    failed = csv_rows(sf.bulk2.Account.get_failed_records(bad[0]["job_id"]))
    check(results, "bulk2_failed_results",
          bad[0]["numberRecordsFailed"] == 1 and failed and failed[0]["sf__Error"].startswith("REQUIRED_FIELD_MISSING"),
          failed)
    got = []
    for page in sf.bulk2.Account.query(f"SELECT Id, Name FROM Account WHERE Name LIKE 'Bulk2 {stamp}%'"):
        got.extend(csv_rows(page))
    names = sorted(r["Name"] for r in got)
    check(results, "bulk2_query", len(got) == 4 and f"Bulk2 {stamp} renamed" in names, names)

    # 3. Bulk API 1.0 (JSON jobs, X-SFDC-Session).
    v1 = sf.bulk.Account.insert([{"Name": f"Bulk1 {stamp} {i}"} for i in range(2)] + [{"Industry": "Energy"}])
    check(results, "bulk1_insert",
          [r["success"] for r in v1] == [True, True, False] and v1[2]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING",
          v1)
    q = sf.bulk.Account.query(f"SELECT Id, Name FROM Account WHERE Name LIKE 'Bulk1 {stamp}%'")
    records = list(q)  # already flattened: one list of records
    check(results, "bulk1_query", sorted(r["Name"] for r in records) == [f"Bulk1 {stamp} 0", f"Bulk1 {stamp} 1"], records)

    # 4. getUpdated / getDeleted over a window that holds the changes above.
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    gone = records[0]["Id"]
    sf.Account.delete(gone)
    # The window is whole minutes and ends at the org's clock: move it past this minute.
    admin_post(admin, "/clock/advance", {"seconds": 120})
    end = datetime.now(timezone.utc) + timedelta(minutes=5)
    updated = sf.Account.updated(start, end)
    inserted = {r["sf__Id"] for r in ok}
    check(results, "get_updated", inserted <= set(updated["ids"]) and gone not in updated["ids"]
          and "latestDateCovered" in updated, len(updated.get("ids", [])))
    deleted = sf.Account.deleted(start, end)
    check(results, "get_deleted", [d["id"] for d in deleted["deletedRecords"]] == [gone]
          and "earliestDateAvailable" in deleted, deleted)

    # 5. One session death: simple-salesforce's REST client logs in again (JWT), once.
    before = stats(admin)["token_requests"]["jwt_bearer"]
    admin_post(admin, f"/users/{env['SF_USERNAME']}/logout", {})
    n = sf.query(f"SELECT COUNT() FROM Account WHERE Name LIKE 'Bulk1 {stamp}%'")["totalSize"]
    after = stats(admin)["token_requests"]["jwt_bearer"]
    results["jwt_token_requests_per_death"] = after - before
    check(results, "heals_after_death", n == 1 and after - before == 1, (n, after - before))

    # 6. salesforce-bulk with the (new) session id: CSV insert and CSV query.
    bulk = SalesforceBulk(sessionId=sf.session_id, host=url, API_version="59.0")
    job = bulk.create_insert_job("Account", contentType="CSV")
    body = "Name,BillingCity\n" + "".join(f"SB {stamp} {i},Paris\n" for i in range(3))
    batch = bulk.post_batch(job, IteratorBytesIO(iter([body.encode()])))
    bulk.wait_for_batch(job, batch, sleep_interval=0.05)
    bulk.close_job(job)
    uploaded = bulk.get_batch_results(batch, job)
    check(results, "salesforce_bulk_insert",
          len(uploaded) == 3 and all(r.success == "true" and r.created == "true" for r in uploaded),
          [tuple(r) for r in uploaded])
    job = bulk.create_query_job("Account", contentType="CSV")
    batch = bulk.query(job, f"SELECT Id, Name FROM Account WHERE Name LIKE 'SB {stamp}%'")
    while not bulk.is_batch_done(batch, job):
        time.sleep(0.05)
    bulk.close_job(job)
    rows = []
    for result in bulk.get_all_results_for_query_batch(batch, job):
        rows.extend(csv.DictReader(io.TextIOWrapper(result, encoding="utf-8")))
    check(results, "salesforce_bulk_query", sorted(r["Name"] for r in rows) == [f"SB {stamp} {i}" for i in range(3)], rows)
    check(results, "salesforce_bulk_job_closed", bulk.job_status(job)["state"] == "Closed")

    results["ok"] = not results.get("failures")
    print(json.dumps(results))
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report, never hang or print secrets
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}",
                          "trace": traceback.format_exc()[-2000:]}))
        sys.exit(1)
