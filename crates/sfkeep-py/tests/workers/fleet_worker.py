"""One worker process of the fleet test: THREADS threads of simple-salesforce queries and
upserts through sfkeep.simple_salesforce.connect, until STOP_FILE exists.

Environment: SF_LOGIN_URL, SF_CLIENT_ID, SF_USERNAME, SF_JWT_KEY_FILE, SF_STORE_PATH,
SF_CACHE_KEY, WORKER (its number), THREADS, STOP_FILE, EPOCH_FILE, ACK_DIR.

Epochs let the test wait on the condition it needs before the next death, instead of a count of
calls (which the dead calls themselves would satisfy): the test writes a number to EPOCH_FILE,
and once every thread has completed an iteration that began after it read that number, the
worker creates ACK_DIR/<worker>-<number>. From then on, every call in flight started on the
token that was current after the test's last death.

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
    threads_n = int(os.environ["THREADS"])
    epoch_file, ack_dir = Path(os.environ["EPOCH_FILE"]), Path(os.environ["ACK_DIR"])
    seen = [0] * threads_n
    acked = [0]

    def epoch() -> int:
        try:
            return int(epoch_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def completed(thread: int, began_in: int) -> None:
        # Called with `lock` held.
        seen[thread] = max(seen[thread], began_in)
        reached = min(seen)
        if reached > acked[0]:
            acked[0] = reached
            (ack_dir / f"{worker}-{reached}").touch()

    def run(thread: int) -> None:
        n = 0
        while not stop.exists():
            ext = f"W{worker}-T{thread}-{n}"
            began_in = epoch()
            try:
                sf.query("SELECT Id, Name FROM Account LIMIT 5")
                status = sf.Account.upsert(f"ExtId__c/{ext}", {"Name": f"fleet {ext}"})
                assert status in (200, 201, 204), status
                with lock:
                    written.append(ext)
                    calls[0] += 2
                    completed(thread, began_in)
            except Exception as e:  # noqa: BLE001 (the test counts every exception)
                with lock:
                    exceptions.append(f"{type(e).__name__}: {e}")
            n += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"written": written, "calls": calls[0], "exceptions": exceptions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
