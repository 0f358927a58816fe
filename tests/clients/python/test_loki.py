"""python-logging-loki (both its legacy and its `version="1"` bodies, HTTP
Basic auth with the key as password) against a real Logbook."""

import logging
import unittest

from logbook_server import KEY, Server, binary


@unittest.skipIf(binary() is None, "SKIPPED: no logbook binary (set LOGBOOK_BIN)")
class PythonLoggingLoki(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def send(self, version, name):
        import logging_loki

        handler = logging_loki.LokiHandler(
            url=f"{self.server.url}/loki/api/v1/push",
            tags={"application": "py-loki", "env": "test"},
            auth=("any-user", KEY),
            version=version,
        )
        # The handler reports failures (any status but 204) by raising here.
        handler.handleError = lambda record: (_ for _ in ()).throw(AssertionError(f"push failed for {record.msg}"))
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.warning(f"disk almost full {version}", extra={"tags": {"host": "db-1"}})
        logger.error(f"disk full {version}")
        logger.info(f"rotated {version}")

    def check(self, version, name):
        almost, full, rotated = (
            self.server.wait_for(f'"disk almost full {version}"', 1)[0],
            self.server.wait_for(f'"disk full {version}"', 1)[0],
            self.server.wait_for(f'"rotated {version}"', 1)[0],
        )
        self.assertEqual(almost["service"], "py-loki")
        self.assertEqual(almost["level"], "warn")
        self.assertEqual(almost["host"], "db-1")
        self.assertEqual(almost["attributes"]["labels"], {"env": "test", "logger": name})
        self.assertEqual(full["level"], "error")
        self.assertNotIn("host", full)
        self.assertEqual(rotated["level"], "info")
        self.assertEqual(rotated["service"], "py-loki")

    def test_legacy_bodies(self):
        self.send("0", "loki.legacy")
        self.check("0", "loki.legacy")

    def test_version_1_bodies(self):
        self.send("1", "loki.v1")
        self.check("1", "loki.v1")


if __name__ == "__main__":
    unittest.main()
