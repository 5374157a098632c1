"""Load test of `ferkaggle serve` on this machine: N concurrent clients posting a real photo.

Starts the server in a child process on 127.0.0.1 (a free port; it never talks to another host)
with `ferkaggle.photos.serve.make_server`, the Haar detector and, by default, an untrained
`simple` CNN with hflip TTA (the time does not depend on the weights; see predict_speed.py), or
`--run RUN`. Then `--clients` threads each POST scikit-image's astronaut photo (512x512 JPEG,
one face) to /predict, one request after another on a fresh connection, for `--seconds`
(or until `--requests` in all), and it stops by itself.

`--slow K` mixes in K slow clients: each sends the headers and half of the body, then stalls
until the server gives up on it (or the run ends). A server that holds a worker or a thread per
stalled client shows it in the others' latency.

Reports requests per second (answered with 200), p50/p95/p99 latency of the normal clients' 200s
(a client answered 503 waits its Retry-After, at most 5 s, and tries again),
counts by status, what the slow clients got, and the server's resident memory: after a 10 s
warm-up, at the end, and the peak (psutil if installed, else /proc). Usage:

  nice python bench/serve_load.py [--clients 16] [--seconds 60] [--slow 4] [--run RUN]
"""

from __future__ import annotations

import argparse
import collections
import http.client
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def serve_child(args) -> None:
    """The server process: load the model, listen on 127.0.0.1, print the port, serve until killed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(ROOT / "bench"))
    from ferkaggle.photos.faces import HaarDetector
    from ferkaggle.photos.predictor import Predictor, select_predict_run
    from ferkaggle.photos.serve import App, make_server

    if args.run:
        predictor = Predictor.from_run(select_predict_run(args.run))
    else:
        from predict_speed import UntrainedRun

        fake = UntrainedRun()
        predictor = Predictor(fake, [(1.0, fake.model, "hflip")])
    server = make_server(App(predictor, HaarDetector()), "127.0.0.1", 0, quiet=True)
    port = server.server_address[1]
    print(f"PORT {port}", flush=True)
    server.serve_forever()


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return 0


def photo_body() -> tuple[bytes, str]:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=92)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"astronaut.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_once(port: int, body: bytes, content_type: str) -> tuple[int | str, float, float]:
    """(status, seconds, Retry-After seconds or 0) of one POST /predict on a new connection."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
    retry_after = 0.0
    try:
        conn.request("POST", "/predict", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        status = response.status
        retry_after = float(response.getheader("Retry-After") or 0)
    except (OSError, http.client.HTTPException) as exc:
        status = f"client error {type(exc).__name__}"
    finally:
        conn.close()
    return status, time.perf_counter() - t0, retry_after


def slow_client(port: int, body: bytes, content_type: str, stop: threading.Event, outcomes: collections.Counter,
                lock: threading.Lock) -> None:
    """Headers and half the body, then nothing until the server answers or closes (or the run ends)."""
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
                reply = b""
                while not stop.is_set():
                    try:
                        chunk = sock.recv(65536)
                    except socket.timeout:
                        continue
                    if not chunk:
                        break
                    reply += chunk
                if stop.is_set():
                    outcome = "still stalled at the end"
                else:
                    line = reply.split(b"\r\n", 1)[0].decode("latin-1")
                    outcome = (f"{line.split(' ', 2)[1]} after {time.perf_counter() - t0:.0f} s" if line
                               else f"closed after {time.perf_counter() - t0:.0f} s")
        except OSError as exc:
            outcome = f"client error {type(exc).__name__}"
        with lock:
            outcomes[outcome] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--requests", type=int, default=0, help="stop after this many requests in all (0: by --seconds)")
    parser.add_argument("--slow", type=int, default=0, help="slow clients that stall mid-upload, mixed in")
    parser.add_argument("--run", help="a run with a saved model (default: an untrained simple CNN)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return serve_child(args)

    child = subprocess.Popen([sys.executable, __file__, "--child", *(["--run", args.run] if args.run else [])],
                             stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        line = child.stdout.readline()
        if not line.startswith("PORT "):
            raise SystemExit(f"the server did not start: {line!r}")
        port = int(line.split()[1])
        body, content_type = photo_body()
        for _ in range(3):  # warm-up: graphs traced, caches filled
            post_once(port, body, content_type)
        latencies: list[float] = []
        statuses: collections.Counter = collections.Counter()
        slow_outcomes: collections.Counter = collections.Counter()
        lock = threading.Lock()
        stop = threading.Event()
        rss: list[tuple[float, int]] = []
        t_start = time.perf_counter()
        deadline = t_start + args.seconds

        def client():
            while not stop.is_set() and time.perf_counter() < deadline:
                with lock:
                    if args.requests and sum(statuses.values()) >= args.requests:
                        return
                status, seconds, retry_after = post_once(port, body, content_type)
                with lock:
                    statuses[status] += 1
                    if status == 200:
                        latencies.append(seconds)
                if retry_after:  # a 503 says when to come back; a polite client waits (at most 5 s)
                    stop.wait(min(retry_after, 5.0))

        def sample_memory():
            while not stop.is_set():
                rss.append((time.perf_counter() - t_start, rss_bytes(child.pid)))
                time.sleep(0.5)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        threads += [threading.Thread(target=slow_client, args=(port, body, content_type, stop, slow_outcomes, lock))
                    for _ in range(args.slow)]
        sampler = threading.Thread(target=sample_memory)
        sampler.start()
        for thread in threads:
            thread.start()
        for thread in threads[:args.clients]:
            thread.join()
        elapsed = time.perf_counter() - t_start
        stop.set()
        for thread in threads[args.clients:]:
            thread.join()
        sampler.join()
    finally:
        child.kill()
        child.wait()

    def pct(q):
        return statistics.quantiles(latencies, n=100, method="inclusive")[q - 1] * 1000 if len(latencies) >= 2 else float("nan")

    warm = [r for t, r in rss if t >= 10] or [r for _, r in rss]
    print(f"# {platform.node()} · {os.cpu_count()} CPUs · {time.strftime('%Y-%m-%d %H:%M')} · {args.clients} clients"
          f" + {args.slow} slow · {elapsed:.0f} s")
    print(f"requests answered 200: {statuses.get(200, 0)} ({statuses.get(200, 0) / elapsed:.2f} req/s)")
    print(f"latency ms: p50 {pct(50):.0f} · p95 {pct(95):.0f} · p99 {pct(99):.0f} · max "
          f"{max(latencies, default=float('nan')) * 1000:.0f}")
    print("by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
    if args.slow:
        print("slow clients: " + ", ".join(f"{k}: {v}" for k, v in sorted(slow_outcomes.items())))
    if rss:
        print(f"server RSS MB: after 10 s {warm[0] / 1e6:.0f} · end {rss[-1][1] / 1e6:.0f} · "
              f"peak {max(r for _, r in rss) / 1e6:.0f}")


if __name__ == "__main__":
    main()
