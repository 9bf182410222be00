"""The MLflow client's own cost of a call: a null server that replays one recorded answer.

A search through ``MlflowClient.search_runs`` costs the server's time plus the
client's: building the request, reading the answer off the socket, decoding it
(``Content-Encoding``), ``json.loads`` and the protobuf parse into ``Run`` objects.
The client's part does not depend on the server's speed, only on the answer's
bytes. Recording a server's answer and replaying it from a server that does
nothing else (this module, in a process of its own) measures that part alone:
it is what bounds the search row for any server that sends those bytes.

Used by ``tracking_client.py`` (one row of ``benchmarks/run.py tracking``), and on its
own against servers already seeded, the rounds interleaved::

    benchmarks/.work/mlflow-venv/bin/python benchmarks/sides/null_server.py \\
        http://127.0.0.1:5000,1 http://127.0.0.1:5001,2 --repeat 40

(each target a tracking URI and the id of the experiment to search; the search is
the tracking benchmark's: a filter on a metric and a param, ordered, 100 results).
Standard library only, apart from the MLflow client it times.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEARCH_FILTER = "metrics.acc > 0.5 AND params.model = 'rf'"
SEARCH_ORDER = ["metrics.acc DESC"]
SEARCH_LIMIT = 100
API = "/api/2.0/mlflow"


# ---------------------------------------------------------------- recording
def record_search(url: str, experiment_id: str) -> tuple[dict[str, str], bytes]:
    """The headers that matter to a reader and the body of ``url``'s answer to the
    search, as it came off the wire (still compressed if the server compressed it).

    Sent through ``requests`` with its default headers, as the MLflow client sends it
    (so ``Accept-Encoding: gzip, deflate``), with the body the client builds."""
    import requests

    body = {
        "experiment_ids": [experiment_id],
        "run_view_type": "ACTIVE_ONLY",
        "filter": SEARCH_FILTER,
        "max_results": SEARCH_LIMIT,
        "order_by": SEARCH_ORDER,
    }
    answer = requests.post(f"{url.rstrip('/')}{API}/runs/search", json=body, stream=True)
    raw = answer.raw.read(decode_content=False)
    if answer.status_code != 200:
        raise SystemExit(f"{url}: runs/search answered {answer.status_code}: {raw[:300]!r}")
    kept = ("Content-Type", "Content-Encoding")
    return {k: answer.headers[k] for k in kept if k in answer.headers}, raw


# ---------------------------------------------------------------- replaying
class NullServer:
    """A process that answers every HTTP/1.1 request on a kept-alive connection with
    the same recorded answer, reading the request only as far as its length."""

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="null-server-")
        answer = Path(self._dir.name) / "answer"
        head = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        answer.write_bytes(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(answer)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._dir.cleanup()

    def __enter__(self) -> NullServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _serve(answer_path: str) -> None:
    answer = Path(answer_path).read_bytes()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            _answer_each(conn, answer)
        except (ConnectionError, EOFError):
            pass
        finally:
            conn.close()


def _answer_each(conn: socket.socket, answer: bytes) -> None:
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            buf += _recv(conn)
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += _recv(conn)
        buf = rest[length:]
        conn.sendall(answer)


def _recv(conn: socket.socket) -> bytes:
    data = conn.recv(65536)
    if not data:
        raise EOFError
    return data


# ------------------------------------------------------------------- timing
def client_search(url: str, experiment_id: str) -> Callable[[], int]:
    """One ``MlflowClient.search_runs`` of the benchmark's search; returns the run count."""
    from mlflow import MlflowClient

    client = MlflowClient(url)

    def search() -> int:
        found = client.search_runs(
            [experiment_id], SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=SEARCH_LIMIT
        )
        return len(found)

    return search


def interleaved(
    calls: dict[str, Callable[[], Any]], repeat: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """The wall seconds and the CPU seconds of this process for each call, in ``repeat``
    rounds of one call of each. The CPU of the client moves less with the machine's
    load than its wall time does (against a null server, the call is all client)."""
    for call in calls.values():
        call()  # warm: connection, imports
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="TRACKING_URI,EXPERIMENT_ID")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    calls: dict[str, Callable[[], Any]] = {}
    nulls: list[NullServer] = []
    sizes = {}
    try:
        for target in args.targets:
            url, experiment_id = target.rsplit(",", 1)
            headers, body = record_search(url, experiment_id)
            sizes[url] = (len(body), headers.get("Content-Encoding", "identity"))
            nulls.append(NullServer(headers, body))
            calls[f"{url} (the server)"] = client_search(url, experiment_id)
            calls[f"{url} (null server, its answer)"] = client_search(nulls[-1].url, experiment_id)
        load = os.getloadavg()[0]
        wall, cpu = interleaved(calls, args.repeat)
        print("   wall  client CPU (medians)")
        for name in calls:
            ms = [statistics.median(x[name]) * 1000 for x in (wall, cpu)]
            print(f"{ms[0]:7.2f} {ms[1]:7.2f} ms  {name}")
        for url, (size, encoding) in sizes.items():
            print(f"answer of {url}: {size:,} bytes ({encoding})")
        after = os.getloadavg()[0]
        print(f"{args.repeat} rounds; load average {load:.1f} before, {after:.1f} after")
    finally:
        for null in nulls:
            null.close()


if __name__ == "__main__":
    main()
