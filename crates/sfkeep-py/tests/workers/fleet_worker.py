"""One worker process of the fleet test: THREADS threads of simple-salesforce queries and
upserts through sfkeep.simple_salesforce.connect, until STOP_FILE exists.

Environment: SF_LOGIN_URL, SF_CLIENT_ID, SF_USERNAME, SF_JWT_KEY_FILE, SF_STORE_PATH,
SF_CACHE_KEY, WORKER (its number), THREADS, STOP_FILE.

Prints one JSON line: {"written": [ExtId__c, ...], "calls": n, "exceptions": [repr, ...]}.
"""

import json
import os
import sys
import threading
from pathlib import Path

import sfkeep
import sfkeep.simple_salesforce


def main() -> int:
    manager = sfkeep.TokenManager(
        login_url=os.environ["SF_LOGIN_URL"],
        grant="jwt_bearer",
        client_id=os.environ["SF_CLIENT_ID"],
        username=os.environ["SF_USERNAME"],
        private_key=Path(os.environ["SF_JWT_KEY_FILE"]).read_text(),
        store="file",
        store_path=os.environ["SF_STORE_PATH"],
        cache_key=os.environ["SF_CACHE_KEY"],
    )
    sf = sfkeep.simple_salesforce.connect(manager)
    worker = os.environ["WORKER"]
    stop = Path(os.environ["STOP_FILE"])
    lock = threading.Lock()
    written, exceptions = [], []
    calls = [0]

    def run(thread: int) -> None:
        n = 0
        while not stop.exists():
            ext = f"W{worker}-T{thread}-{n}"
            try:
                sf.query("SELECT Id, Name FROM Account LIMIT 5")
                status = sf.Account.upsert(f"ExtId__c/{ext}", {"Name": f"fleet {ext}"})
                assert status in (200, 201, 204), status
                with lock:
                    written.append(ext)
                    calls[0] += 2
            except Exception as e:  # noqa: BLE001 (the test counts every exception)
                with lock:
                    exceptions.append(f"{type(e).__name__}: {e}")
            n += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(int(os.environ["THREADS"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"written": written, "calls": calls[0], "exceptions": exceptions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
