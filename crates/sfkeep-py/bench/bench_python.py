"""Benchmarks of the Python wheel, as ratios against a baseline run side by side.

1. Per-call overhead of ``sfkeep.requests.session`` against a plain ``requests.Session``
   sending a fixed token, on the same local server (the simulated org's ``limits``), in
   alternating rounds.
2. ``TokenManager.token()`` (the fast path: a fresh cached token) against reading an attribute
   of a Python object.

Environment: SF_LOGIN_URL, SF_CLIENT_ID, SF_CLIENT_SECRET, SF_REFRESH_TOKEN (a simulated org,
started by scripts/bench.d/python.sh). Prints one JSON line.
"""

import json
import os
import statistics
import time
import timeit

import requests

import sfkeep
import sfkeep.requests

ROUNDS = int(os.environ.get("ROUNDS", "5"))
CALLS = int(os.environ.get("CALLS", "2000"))


def per_call(send, calls):
    start = time.perf_counter()
    for _ in range(calls):
        r = send()
        assert r.status_code == 200, r.status_code
    return (time.perf_counter() - start) / calls


def main():
    m = sfkeep.TokenManager(
        login_url=os.environ["SF_LOGIN_URL"],
        client_id=os.environ["SF_CLIENT_ID"],
        client_secret=os.environ["SF_CLIENT_SECRET"],
        refresh_token=os.environ["SF_REFRESH_TOKEN"],
    )
    token = m.token()
    url = f"{token.instance_url}/services/data/v59.0/limits"
    plain = requests.Session()
    plain.headers["Authorization"] = "Bearer " + token.access_token
    healing = sfkeep.requests.session(m)
    # Warm both (connections, imports).
    per_call(lambda: plain.get(url), 200)
    per_call(lambda: healing.get(url), 200)
    ratios, plain_us, healing_us = [], [], []
    for _ in range(ROUNDS):
        p = per_call(lambda: plain.get(url), CALLS)
        h = per_call(lambda: healing.get(url), CALLS)
        plain_us.append(p * 1e6)
        healing_us.append(h * 1e6)
        ratios.append(h / p)

    class Holder:
        access_token = token.access_token

    holder = Holder()
    n = 200_000
    token_ns = min(timeit.repeat(m.token, number=n, repeat=5)) / n * 1e9
    attr_ns = min(timeit.repeat(lambda: holder.access_token, number=n, repeat=5)) / n * 1e9
    token_attr_ns = min(timeit.repeat(lambda: m.token().access_token, number=n, repeat=5)) / n * 1e9
    print(json.dumps({
        "session_vs_plain_ratio_median": round(statistics.median(ratios), 3),
        "session_vs_plain_ratios": [round(r, 3) for r in ratios],
        "plain_us_per_call_median": round(statistics.median(plain_us), 1),
        "session_us_per_call_median": round(statistics.median(healing_us), 1),
        "token_ns": round(token_ns, 1),
        "token_access_token_ns": round(token_attr_ns, 1),
        "attribute_read_ns": round(attr_ns, 1),
        "token_vs_attribute_ratio": round(token_ns / attr_ns, 1),
    }))


if __name__ == "__main__":
    main()
