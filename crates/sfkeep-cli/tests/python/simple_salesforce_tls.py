#!/usr/bin/env python3
"""simple-salesforce (real) through `sfkeep proxy --tls`, configured as a user would: its own
constructor arguments (instance_url, a placeholder session_id the proxy replaces) and
REQUESTS_CA_BUNDLE pointing at the proxy's local CA. No adapter, no patched session.

Environment: PROXY_URL (https://127.0.0.1:PORT), SF_ADMIN_URL (the simulated org's /_fake),
SF_USERNAME, REQUESTS_CA_BUNDLE. Queries, logs the user out at the org, queries again; prints
one JSON line and exits 0 when both queries returned records.
"""

import json
import os
import sys
import traceback
from urllib.parse import quote

import requests
from simple_salesforce import Salesforce


def main():
    env = os.environ
    sf = Salesforce(instance_url=env["PROXY_URL"], session_id="replaced-by-the-proxy")
    out = {"before": None, "after": None, "logout": None}
    out["before"] = sf.query("SELECT Id, Name FROM Account")["totalSize"]
    user = quote(env["SF_USERNAME"], safe="@")
    out["logout"] = requests.post(f"{env['SF_ADMIN_URL'].rstrip('/')}/users/{user}/logout",
                                  json={}, timeout=30).status_code
    out["after"] = sf.query("SELECT Id, Name FROM Account")["totalSize"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except Exception:  # noqa: BLE001 - one JSON line, whatever happens
        print(json.dumps({"error": traceback.format_exc(limit=3)}))
        code = 1
    sys.exit(code)
