#!/usr/bin/env python3
"""Acknowledged-ingest figures for every queue side by side (BENCHMARKS.md,
"Every queue side by side"): `logbook bench ingest` against `logbook serve` in
role `all` (embedded store), or against one ingest node with 1 or 2 worker
processes over PostgreSQL, for the embedded queue, Redis, RabbitMQ and Kafka.

Run from the repository root after `cargo build --release`, with the machine's
PostgreSQL, Redis and RabbitMQ, and a Kafka-compatible broker at $KAFKA:

    KAFKA=127.0.0.1:19092 python3 crates/bench/scripts/queues.py all|1|2

Prints one Markdown table row per queue: events/s, ack p50 and p99 (ms), errors.
"""
import json, os, socket, subprocess, sys, tempfile, time, glob

BIN = "target/release/logbook"
KEY = "lbk_benchmark-key-0123456789abcdefghijkl"
FILES = sorted(glob.glob("../shared/data/loghub/*/*_2k.log"))
EVENTS = int(os.environ.get("EVENTS", "400000"))
LIMITS = '[limits]\ncaller_events_per_second = 1e7\ncaller_event_burst = 2e7\ntenant_events_per_second = 1e7\ntenant_event_burst = 2e7\n'

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def wait_up(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never came up")

procs = []
def serve(role, queue, store, settings, key_file):
    d = tempfile.mkdtemp(prefix="lbbench-")
    port = free_port()
    cfg = os.path.join(d, "bench.toml")
    text = f'role = "{role}"\n' + settings + LIMITS + f'[audit]\nkey_file = "{key_file}"\n'
    open(cfg, "w").write(text)
    args = [BIN, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(d, "data")]
    if queue: args += ["--queue", queue]
    if store: args += ["--store", store]
    env = dict(os.environ, LOGBOOK_BOOTSTRAP_KEY=KEY, LOGBOOK_LOG="warn")
    p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
    procs.append(p)
    wait_up(port)
    time.sleep(1.0)
    return port

def stop_all():
    for p in procs:
        p.kill(); p.wait()
    procs.clear()

def cleanup():
    """Removes what the runs left in the shared Redis and RabbitMQ (their
    prefixes are `bench-<pid>-<n>`); the Kafka topics go with the broker."""
    prefix = f"bench-{os.getpid()}-"
    keys = subprocess.run(["redis-cli", "--scan", "--pattern", "{" + prefix + "*"],
                          capture_output=True, text=True).stdout.split()
    if keys:
        subprocess.run(["redis-cli", "del", *keys], capture_output=True)
    listed = subprocess.run(["rabbitmqctl", "list_queues", "name", "-q"], capture_output=True, text=True)
    for queue in listed.stdout.split():
        if queue.startswith(prefix):
            subprocess.run(["rabbitmqctl", "delete_queue", queue], capture_output=True)

def bench(port):
    args = [BIN, "bench", "ingest", "--url", f"http://127.0.0.1:{port}", "--connections", "8", "--batch", "1000",
            "--events", str(EVENTS), "--json", "--quiet"]
    for f in FILES: args += ["--file", f]
    out = subprocess.run(args, env=dict(os.environ, LOGBOOK_KEY=KEY), capture_output=True, text=True)
    r = json.loads(out.stdout)
    return r

def run(name, queues):
    rows = []
    n = 0
    for qname, qurl in queues:
        n += 1
        key_file = tempfile.mkdtemp(prefix="lbkey-") + "/checkpoint.key"
        if name == "all":
            settings = f'[queue]\nprefix = "bench-{os.getpid()}-{n}"\n'
            port = serve("all", qurl, None, settings, key_file)
            r = bench(port); stop_all()
            rows.append((qname, "role all, embedded store", r))
        else:
            workers = int(name)
            db = f"lbbench_{os.getpid()}_{n}"
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", db], check=True)
            store = f"postgres://postgres@127.0.0.1:5432/{db}"
            settings = f'[queue]\nprefix = "bench-{os.getpid()}-{n}"\n'
            serve("query", qurl, store, settings, key_file)
            port = serve("ingest", qurl, store, settings, key_file)
            for _ in range(workers):
                serve("worker", qurl, store, settings, key_file)
            r = bench(port); stop_all()
            subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", db])
            rows.append((qname, f"1 ingest + {workers} worker(s), PostgreSQL store", r))
        q = rows[-1]
        lat = q[2]["ack_latency"]
        print(f"| {q[0]} | {q[1]} | {q[2]['events_per_sec']:,.0f} | {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} | {q[2]['errors']} |", flush=True)
    return rows

if __name__ == "__main__":
    kafka = os.environ["KAFKA"]
    mode = sys.argv[1]
    queues = []
    if mode == "all":
        queues.append(("embedded", None))
    queues += [("Redis Streams", "redis://127.0.0.1:6379"),
               ("RabbitMQ", "amqp://guest:guest@127.0.0.1:5672/%2f"),
               ("Kafka (tansu, memory)", f"kafka://{kafka}/bench-{os.getpid()}-{mode}?partitions=2")]
    try:
        run(mode, queues)
    finally:
        stop_all()
        cleanup()
