"""Starts a real Logbook binary for the client tests and reads back what it stored."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

KEY = "lbk_client_tests_0123456789abcdefghijklmnop"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.join(HERE, "..", "..", "..", "target", "debug", "logbook")


def binary():
    """The logbook binary under test, or None (the tests then skip)."""
    path = os.environ.get("LOGBOOK_BIN") or DEFAULT_BIN
    return path if os.path.exists(path) else None


class Server:
    """One `logbook serve` on a free port in a temporary data directory."""

    def __init__(self, config=""):
        self.dir = tempfile.mkdtemp(prefix="logbook-clients-")
        args = [binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(self.dir, "data")]
        if config:
            path = os.path.join(self.dir, "logbook.toml")
            with open(path, "w") as file:
                file.write(config)
            args += ["--config", path]
        env = dict(os.environ, LOGBOOK_BOOTSTRAP_KEY=KEY)
        env.setdefault("LOGBOOK_LOG", "warn")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
        self.url = self._address()

    def _address(self):
        found = {}

        def read():
            for line in self.process.stdout:
                if "listening on http://" in line:
                    found["url"] = line.strip().split("listening on ", 1)[1]
                    break
            # Keep draining so the server never blocks on a full pipe.
            for _ in self.process.stdout:
                pass

        threading.Thread(target=read, daemon=True).start()
        deadline = time.time() + 30
        while "url" not in found:
            if time.time() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("logbook did not start")
            time.sleep(0.02)
        return found["url"]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def search(self, query, limit=100):
        """The stored log events matching `query`, newest first."""
        params = urllib.parse.urlencode({"q": query, "limit": limit})
        request = urllib.request.Request(
            f"{self.url}/v1/logs?{params}", headers={"Authorization": f"Bearer {KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["events"]

    def wait_for(self, query, count, timeout=15):
        """Waits until `count` events match `query`; returns them, oldest first."""
        deadline = time.time() + timeout
        while True:
            events = self.search(query)
            if len(events) >= count:
                return list(reversed(events))
            if time.time() > deadline:
                raise AssertionError(f"{query!r}: {len(events)} events, expected {count}: {events}")
            time.sleep(0.05)
