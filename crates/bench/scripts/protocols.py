#!/usr/bin/env python3
"""Acknowledged-ingest figures per protocol (BENCHMARKS.md, "Every protocol
side by side"): `logbook bench ingest --protocol ndjson|otlp|loki|es` against
a fresh `logbook serve` (role `all`, embedded queue and store) for each run,
rounds alternating the order, with the same Loghub events.

Run from the repository root after `cargo build --release`:

    python3 crates/bench/scripts/protocols.py [rounds]

Prints one Markdown table row per protocol: events/s of every round, ack p50
and p99 (ms), body bytes per event, errors.
"""
import glob, json, os, shutil, socket, subprocess, sys, tempfile, time

BIN = "target/release/logbook"
KEY = "lbk_benchmark-key-0123456789abcdefghijkl"
FILES = sorted(glob.glob("../shared/data/loghub/*/*_2k.log"))
EVENTS = int(os.environ.get("EVENTS", "400000"))
PROTOCOLS = os.environ.get("PROTOCOLS", "ndjson,otlp,loki,es").split(",")
LIMITS = '[limits]\ncaller_events_per_second = 1e7\ncaller_event_burst = 2e7\ntenant_events_per_second = 1e7\ntenant_event_burst = 2e7\n'


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def serve():
    d = tempfile.mkdtemp(prefix="lbproto-")
    port = free_port()
    cfg = os.path.join(d, "bench.toml")
    open(cfg, "w").write(LIMITS)
    args = [BIN, "serve", "--config", cfg, "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(d, "data")]
    p = subprocess.Popen(args, env=dict(os.environ, LOGBOOK_BOOTSTRAP_KEY=KEY, LOGBOOK_LOG="warn"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); break
        except OSError:
            time.sleep(0.1)
    time.sleep(1.0)
    return p, port, d


def bench(protocol):
    server, port, d = serve()
    try:
        args = [BIN, "bench", "ingest", "--url", f"http://127.0.0.1:{port}", "--protocol", protocol,
                "--connections", "8", "--batch", "1000", "--events", str(EVENTS), "--json", "--quiet"]
        for f in FILES:
            args += ["--file", f]
        out = subprocess.run(args, env=dict(os.environ, LOGBOOK_KEY=KEY), capture_output=True, text=True)
        return json.loads(out.stdout)
    finally:
        server.kill(); server.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    results = {p: [] for p in PROTOCOLS}
    for r in range(rounds):
        order = PROTOCOLS if r % 2 == 0 else list(reversed(PROTOCOLS))
        for protocol in order:
            results[protocol].append(bench(protocol))
    print("| protocol | " + " | ".join(f"round {i + 1} ev/s" for i in range(rounds)) + " | p50 ms | p99 ms | bytes/event | errors |")
    print("|---|" + "---:|" * (rounds + 4))
    for protocol in PROTOCOLS:
        runs = results[protocol]
        rates = " | ".join(f"{run['events_per_sec']:,.0f}" for run in runs)
        p50 = "–".join(sorted({f"{run['ack_latency']['p50_ms']:.0f}" for run in runs}))
        p99 = "–".join(sorted({f"{run['ack_latency']['p99_ms']:.0f}" for run in runs}))
        size = runs[0]["mean_event_bytes"]
        errors = sum(run["errors"] for run in runs)
        print(f"| {protocol} | {rates} | {p50} | {p99} | {size:.0f} | {errors} |")


main()
