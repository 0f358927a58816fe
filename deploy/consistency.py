#!/usr/bin/env python3
"""Checks of the deployment files that schemas cannot express, run by deploy/validate.

    consistency.py docker DOCKERFILE               (its build inputs and .dockerignore)
    consistency.py compose ENV_EXAMPLE COMPOSE_FILE...
    consistency.py kubernetes MANIFEST...          (one overlay's rendering, or its files and its
                                                    kustomization.yaml, and its example Secrets)
    consistency.py routing NGINX NGINX_CONF        (sends requests through the real nginx)

Each prints what it checked and exits 1 naming every problem it found. Every
LOGBOOK_* variable a file sets must be one the server reads: a variable the
server does not know is silently ignored, so a typo would deploy a server
with a default instead of the setting.
"""

import http.server
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


class Problems:
    """Collects problems instead of stopping at the first."""

    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")

    def finish(self, what):
        for item in self.items:
            print(f"  FAIL {item}", file=sys.stderr)
        if self.items:
            print(f"{what}: {len(self.items)} problem(s)", file=sys.stderr)
            sys.exit(1)
        print(f"{what}: ok")


def known_variables():
    """The LOGBOOK_* variables `logbook serve` reads, from the CLI's sources."""
    names = set()
    for source in (REPO / "crates" / "cli" / "src").rglob("*.rs"):
        names.update(re.findall(r'"(LOGBOOK_[A-Z0-9_]+)"', source.read_text()))
    if "LOGBOOK_LISTEN" not in names:
        sys.exit("could not find the server's variables in crates/cli/src")
    return names


def check_variable(problems, where, name, known):
    if name.startswith("LOGBOOK_") and name not in known:
        problems.add(where, f"{name} is not a variable Logbook reads")


# ---- docker --------------------------------------------------------------

# Paths the build context must hold, and paths it must leave out.
CONTEXT_INCLUDES = ["Cargo.toml", "Cargo.lock", "crates/cli/src/main.rs", "crates/server/Cargo.toml"]
CONTEXT_EXCLUDES = [
    "target/release/logbook",
    "crates/cli/target/debug/x",
    ".git/HEAD",
    "sdk/node/node_modules/x/index.js",
    "deploy/compose/.env",
    "logbook-data/meta.db",
]


def dockerignore_patterns(path):
    """(regex, negated) for each line, as Docker reads them: a pattern also
    matches everything under a directory it matches, and the last match wins."""
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((re.compile(regex + "$"), negated))
    return patterns


def ignored(patterns, path):
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for regex, negated in patterns:
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def docker(dockerfile):
    problems = Problems()
    dockerfile = Path(dockerfile)
    context = dockerfile.parent
    patterns = dockerignore_patterns(context / ".dockerignore")
    sources = []
    for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
        words = line.split()
        if words and words[0] in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    for source in sources:
        if not (context / source).exists():
            problems.add(dockerfile, f"copies {source}, which does not exist")
        elif ignored(patterns, source):
            problems.add(dockerfile, f"copies {source}, which .dockerignore leaves out of the context")
        elif (context / source).is_file() and "healthcheck" in source and not os.access(context / source, os.X_OK):
            problems.add(dockerfile, f"copies {source}, which is not executable")
    for path in CONTEXT_INCLUDES:
        if ignored(patterns, path):
            problems.add(".dockerignore", f"leaves out {path}, which the build needs")
    for path in CONTEXT_EXCLUDES:
        if not ignored(patterns, path):
            problems.add(".dockerignore", f"sends {path} to the build context")
    if not sources:
        problems.add(dockerfile, "copies nothing from the context")
    problems.finish(f"docker build inputs ({len(sources)} copied paths)")


# ---- compose -------------------------------------------------------------

INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+])?")


def env_example_names(path):
    names = set()
    for line in path.read_text().splitlines():
        match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def compose(env_example, files):
    problems = Problems()
    known = known_variables()
    defined = env_example_names(Path(env_example))
    for file in map(Path, files):
        text = file.read_text()
        for name, operator in INTERPOLATION.findall(text):
            # ${X} and ${X:?message} need a value; ${X:-default} does not.
            if "-" not in operator and name not in defined:
                problems.add(file, f"${{{name}}} is required but {env_example} does not set it")
        document = yaml.safe_load(text)
        services = document.get("services", {})
        volumes = document.get("volumes") or {}
        for service_name, service in services.items():
            where = f"{file.name}: service {service_name}"
            check_compose_service(problems, file, where, service, services, volumes, known)
    problems.finish(f"compose consistency ({len(files)} files)")


def check_compose_service(problems, file, where, service, services, volumes, known):
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
    for name in environment:
        check_variable(problems, where, name, known)

    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        depends_on = {name: {} for name in depends_on}
    for target, condition in depends_on.items():
        if target not in services:
            problems.add(where, f"depends on {target}, which is not a service")
            continue
        needs_profile = set(services[target].get("profiles") or []) - set(service.get("profiles") or [])
        if needs_profile and (condition or {}).get("required", True):
            problems.add(where, f"depends on {target} (profile {sorted(needs_profile)}) without required: false")

    for mount in service.get("volumes") or []:
        source = mount.get("source") if isinstance(mount, dict) else mount.split(":", 1)[0]
        if source.startswith((".", "/")):
            if not (file.parent / source).exists():
                problems.add(where, f"mounts {source}, which does not exist")
        elif source not in volumes:
            problems.add(where, f"mounts the volume {source}, which is not declared")

    build = service.get("build")
    if build:
        context = file.parent / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if not (context / dockerfile).is_file():
            problems.add(where, f"builds {context / dockerfile}, which does not exist")


# ---- kubernetes ----------------------------------------------------------

WORKLOADS = ("Deployment", "StatefulSet")


def kubernetes(files):
    problems = Problems()
    known = known_variables()
    documents = [doc for file in files for doc in yaml.safe_load_all(Path(file).read_text()) if doc]
    by_kind = {}
    for doc in documents:
        if doc["kind"] == "Kustomization":
            # Unrendered files: the ConfigMaps the overlay generates.
            for generated in doc.get("configMapGenerator", []):
                by_kind.setdefault("ConfigMap", {})[generated["name"]] = generated
            continue
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    workloads = [doc for kind in WORKLOADS for doc in by_kind.get(kind, {}).values()]
    if not workloads:
        problems.add("manifests", "no Deployment or StatefulSet")

    for workload in workloads:
        check_workload(problems, workload, by_kind, known)
    for secret in by_kind.get("Secret", {}).values():
        for name in (secret.get("stringData") or {}) | (secret.get("data") or {}):
            check_variable(problems, f"Secret {secret['metadata']['name']}", name, known)

    for service in by_kind.get("Service", {}).values():
        where = f"Service {service['metadata']['name']}"
        pods = matching(workloads, service["spec"].get("selector", {}))
        if not pods:
            problems.add(where, "selects no workload's pods")
        for port in service["spec"]["ports"]:
            target = port.get("targetPort")
            if isinstance(target, str) and not any(target in port_names(pod) for pod in pods):
                problems.add(where, f"targets the port {target}, which its pods do not name")
    for pdb in by_kind.get("PodDisruptionBudget", {}).values():
        if not matching(workloads, pdb["spec"]["selector"].get("matchLabels", {})):
            problems.add(f"PodDisruptionBudget {pdb['metadata']['name']}", "selects no workload's pods")
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            where = f"HorizontalPodAutoscaler {hpa['metadata']['name']}"
            problems.add(where, f"scales {ref['kind']} {ref['name']}, which is not here")
    for ingress in by_kind.get("Ingress", {}).values():
        where = f"Ingress {ingress['metadata']['name']}"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = by_kind.get("Service", {}).get(backend["name"])
                port = backend["port"].get("name")
                if service is None:
                    problems.add(where, f"routes to the Service {backend['name']}, which is not here")
                elif port and port not in [p.get("name") for p in service["spec"]["ports"]]:
                    problems.add(where, f"routes to the port {port}, which {backend['name']} does not name")
    problems.finish(f"kubernetes consistency ({len(documents)} objects in {len(files)} files)")


def matching(workloads, selector):
    return [
        w for w in workloads if selector and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]


def port_names(workload):
    return {p.get("name") for c in workload["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}


def check_workload(problems, workload, by_kind, known):
    where = f"{workload['kind']} {workload['metadata']['name']}"
    spec = workload["spec"]
    if not matching([workload], spec["selector"]["matchLabels"]):
        problems.add(where, "its selector does not match its own pods")
    pod = spec["template"]["spec"]
    if not pod.get("securityContext", {}).get("runAsNonRoot"):
        problems.add(where, "does not require runAsNonRoot")
    if pod.get("enableServiceLinks", True):
        problems.add(where, "leaves enableServiceLinks on (Services named logbook* set LOGBOOK_* variables)")
    for volume in pod.get("volumes", []):
        config_map = volume.get("configMap", {}).get("name")
        if config_map and config_map not in by_kind.get("ConfigMap", {}):
            problems.add(where, f"mounts the ConfigMap {config_map}, which is not here")
        secret = volume.get("secret", {}).get("secretName")
        if secret and secret not in by_kind.get("Secret", {}):
            problems.add(where, f"mounts the Secret {secret}, which no example shows")
    for container in pod["containers"]:
        cwhere = f"{where}, container {container['name']}"
        for env in container.get("env", []):
            check_variable(problems, cwhere, env["name"], known)
        for source in container.get("envFrom", []):
            name = source.get("secretRef", {}).get("name")
            if name and name not in by_kind.get("Secret", {}):
                problems.add(cwhere, f"reads the Secret {name}, which no example shows")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(bound, {}):
                    problems.add(cwhere, f"has no {resource} {bound[:-1]}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.add(cwhere, f"{probe} does not ask {path}")


# ---- routing -------------------------------------------------------------

# (method, path, role): where the entry point must send each way in.
ROUTES = [
    ("POST", "/v1/logs", "ingest"),
    ("POST", "/v1/logs?wait=searchable", "ingest"),
    ("POST", "/v1/audit", "ingest"),
    ("POST", "/otlp/v1/logs", "ingest"),
    ("POST", "/loki/api/v1/push", "ingest"),
    ("POST", "/es/_bulk", "ingest"),
    ("PUT", "/es/_index_template/logs", "ingest"),
    ("GET", "/es/", "ingest"),
    ("GET", "/es", "ingest"),
    ("GET", "/v1/logs?q=error", "query"),
    ("GET", "/v1/logs/histogram", "query"),
    ("GET", "/v1/audit", "query"),
    ("GET", "/v1/audit/tail", "query"),
    ("GET", "/v1/tail", "query"),
    ("POST", "/v1/tail/ticket", "query"),
    ("POST", "/v1/auth/login", "query"),
    ("POST", "/v1/keys", "query"),
    ("GET", "/v1/admin/status", "query"),
    ("GET", "/metrics", "query"),
    ("GET", "/readyz", "query"),
    ("GET", "/essentials", "query"),
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def role_server(role):
    """An HTTP server on a free port that answers every request with its role's name."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = role.encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def routing(nginx, conf):
    problems = Problems()
    servers = {role: role_server(role) for role in ("ingest", "query")}
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        text = Path(conf).read_text()
        # The same configuration, with the two roles on this machine's
        # loopback instead of Docker's DNS names, and nginx's files in prefix.
        ports = "".join(f"        {role} {server.server_address[1]};\n" for role, server in servers.items())
        temp_paths = "".join(
            f"    {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        test_map = "    map $logbook_role $logbook_test_port {\n" + ports + "    }\n"
        replacements = [
            ("http {\n", "http {\n" + temp_paths + test_map),
            ("proxy_pass http://$logbook_role:8080;", "proxy_pass http://127.0.0.1:$logbook_test_port;"),
            ("listen 8080;", f"listen 127.0.0.1:{port};"),
            ("access_log /dev/stdout;", "access_log off;"),
        ]
        for old, new in replacements:
            if old not in text:
                sys.exit(f"{conf} no longer contains {old!r}: update consistency.py")
            text = text.replace(old, new, 1)
        test_conf = Path(prefix) / "nginx.conf"
        test_conf.write_text(f"daemon off;\npid {prefix}/nginx.pid;\n" + text)
        process = subprocess.Popen([nginx, "-p", prefix, "-e", "stderr", "-c", str(test_conf)])
        try:
            wait_listening(port, process)
            for method, path, role in ROUTES:
                body = None if method == "GET" else b"{}"
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=body)
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        got = response.read().decode()
                except urllib.error.URLError as error:
                    got = f"an error ({error})"
                if got != role:
                    problems.add(f"{method} {path}", f"went to {got}, not {role}")
        finally:
            process.terminate()
            process.wait(timeout=10)
    for server in servers.values():
        server.shutdown()
    problems.finish(f"nginx routing ({len(ROUTES)} requests)")


def wait_listening(port, process):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("nginx exited before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("nginx did not listen within 10 s")


if __name__ == "__main__":
    command, *args = sys.argv[1:] or [""]
    if command == "docker" and len(args) == 1:
        docker(args[0])
    elif command == "compose" and len(args) >= 2:
        compose(args[0], args[1:])
    elif command == "kubernetes" and args:
        kubernetes(args)
    elif command == "routing" and len(args) == 2:
        routing(*args)
    else:
        sys.exit(__doc__)
