"""The OpenTelemetry Python SDK's OTLP/HTTP log exporter (protobuf) with the
standard `logging` bridge, against a real Logbook."""

import http.server
import logging
import os
import threading
import time
import unittest
import urllib.request

from logbook_server import KEY, Server, binary


@unittest.skipIf(binary() is None, "SKIPPED: no logbook binary (set LOGBOOK_BIN)")
class OpenTelemetryPython(unittest.TestCase):
    def setUp(self):
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        self.LoggerProvider = LoggerProvider
        self.LoggingHandler = LoggingHandler
        self.SimpleLogRecordProcessor = SimpleLogRecordProcessor
        self.resource = Resource.create({"service.name": "py-shop", "host.name": "web-7", "deployment.environment": "test"})
        self.tracer = TracerProvider(resource=self.resource).get_tracer("shop")
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop()

    def logger(self, name, exporter):
        provider = self.LoggerProvider(resource=self.resource)
        provider.add_log_record_processor(self.SimpleLogRecordProcessor(exporter))
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self.LoggingHandler(level=logging.DEBUG, logger_provider=provider))
        return logger, provider

    def test_records_attributes_exceptions_and_trace_context(self):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        self.server = Server()
        # The environment variables users set: the SDK appends /v1/logs.
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"{self.server.url}/otlp"
        os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer%20{KEY}"
        try:
            logger, provider = self.logger("shop.payments", OTLPLogExporter())
        finally:
            del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
            del os.environ["OTEL_EXPORTER_OTLP_HEADERS"]
        with self.tracer.start_as_current_span("checkout") as span:
            context = span.get_span_context()
            logger.error("card declined for %s", "ORD-1", extra={"order.id": "ORD-1", "amount": 12.5, "retries": 3})
        try:
            1 / 0
        except ZeroDivisionError:
            logger.exception("division failed")
        logger.debug("details follow")
        provider.force_flush()

        declined, = self.server.wait_for('"card declined"', 1)
        self.assertEqual(declined["message"], "card declined for ORD-1")
        self.assertEqual(declined["level"], "error")
        self.assertEqual(declined["service"], "py-shop")
        self.assertEqual(declined["host"], "web-7")
        self.assertEqual(declined["trace_id"], format(context.trace_id, "032x"))
        self.assertEqual(declined["span_id"], format(context.span_id, "016x"))
        attributes = declined["attributes"]
        self.assertEqual(attributes["order.id"], "ORD-1")
        self.assertEqual(attributes["amount"], 12.5)
        self.assertEqual(attributes["retries"], 3)
        self.assertEqual(attributes["severity_text"], "ERROR")
        self.assertEqual(attributes["severity_number"], 17)
        self.assertEqual(attributes["scope"]["name"], "shop.payments")
        self.assertEqual(attributes["resource"]["deployment.environment"], "test")
        self.assertEqual(attributes["resource"]["telemetry.sdk.language"], "python")
        self.assertTrue(any(key.startswith("code.") for key in attributes), attributes)
        # The record's own time, to the microsecond Python gives.
        self.assertRegex(declined["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")

        failed, = self.server.wait_for('"division failed"', 1)
        self.assertEqual(failed["level"], "error")
        self.assertEqual(failed["attributes"]["exception.type"], "ZeroDivisionError")
        self.assertEqual(failed["attributes"]["exception.message"], "division by zero")
        self.assertIn("ZeroDivisionError", failed["attributes"]["exception.stacktrace"])
        self.assertNotIn("trace_id", failed, "outside a span there is no trace context")

        details, = self.server.wait_for("details", 1)
        self.assertEqual(details["level"], "debug")

    def test_gzip_bodies(self):
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        self.server = Server()
        exporter = OTLPLogExporter(
            endpoint=f"{self.server.url}/otlp/v1/logs",
            headers={"Authorization": f"Bearer {KEY}"},
            compression=Compression.Gzip,
        )
        logger, provider = self.logger("shop.gzip", exporter)
        for number in range(20):
            logger.warning("compressed record %d", number, extra={"number": number})
        provider.force_flush()
        events = self.server.wait_for("compressed", 20)
        self.assertEqual(sorted(event["attributes"]["number"] for event in events), list(range(20)))
        self.assertTrue(all(event["level"] == "warn" for event in events))

    def test_logbook_rate_limit_429_is_retried_and_nothing_is_lost(self):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        # One event a second for the tenant: each record after the first
        # meets a 429 with Retry-After from Logbook's own rate limit, and the
        # exporter retries it.
        self.server = Server("[limits]\ntenant_events_per_second = 1.0\ntenant_event_burst = 1.0\n")
        exporter = OTLPLogExporter(endpoint=f"{self.server.url}/otlp/v1/logs", headers={"Authorization": f"Bearer {KEY}"})
        logger, provider = self.logger("shop.limited", exporter)
        started = time.time()
        for number in range(3):
            logger.info("limited record %d", number)
        provider.force_flush()
        events = self.server.wait_for("limited", 3)
        self.assertEqual([event["message"] for event in events], [f"limited record {n}" for n in range(3)])
        self.assertGreater(time.time() - started, 1.5, "the later records waited for the rate")

    def test_503_is_retried_and_nothing_is_lost(self):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        self.server = Server()
        proxy = RefuseOnceProxy(self.server.url)
        try:
            exporter = OTLPLogExporter(endpoint=f"{proxy.url}/otlp/v1/logs", headers={"Authorization": f"Bearer {KEY}"})
            logger, provider = self.logger("shop.outage", exporter)
            logger.error("during an outage")
            provider.force_flush()
        finally:
            proxy.stop()
        self.assertEqual(proxy.refused, 1)
        self.assertEqual(proxy.forwarded, 1)
        event, = self.server.wait_for('"during an outage"', 1)
        self.assertEqual(event["service"], "py-shop")


class RefuseOnceProxy:
    """Answers the first request with 503 and Retry-After: 1, as Logbook
    does while its queue is full, and forwards the others to Logbook."""

    def __init__(self, upstream):
        proxy = self
        self.refused = 0
        self.forwarded = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if proxy.refused == 0:
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = response.read()
                    proxy.forwarded += 1
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.headers["Content-Type"])
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    unittest.main()
