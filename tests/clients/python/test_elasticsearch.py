"""The official Elasticsearch Python client: `info()` (its product check)
and `helpers.bulk` with one invalid document, against a real Logbook."""

import unittest

from logbook_server import KEY, Server, binary


@unittest.skipIf(binary() is None, "SKIPPED: no logbook binary (set LOGBOOK_BIN)")
class ElasticsearchPython(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from elasticsearch import Elasticsearch

        cls.server = Server()
        cls.es = Elasticsearch(f"{cls.server.url}/es", basic_auth=("elastic", KEY), request_timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.es.close()
        cls.server.stop()

    def test_info_passes_the_product_check(self):
        info = self.es.info()
        self.assertEqual(info["version"]["number"].split(".")[0], "8")
        self.assertEqual(info["tagline"], "You Know, for Search")

    def test_bulk_reports_exactly_the_invalid_document(self):
        from elasticsearch import helpers

        documents = [
            {"_index": "shop-logs", "_op_type": "create", "_source": {
                "@timestamp": "2026-12-07T10:00:00.250Z", "message": "order placed",
                "log": {"level": "info"}, "service": {"name": "shop"}, "host": {"name": "web-3"},
                "order": {"id": "ORD-9", "total": 42.5}}},
            {"_index": "shop-logs", "_op_type": "index", "_id": "fixed-id-1", "_source": {
                "@timestamp": "2026-12-07T10:00:01Z", "message": "payment captured", "level": "warning"}},
            # No message: the one document Logbook refuses.
            {"_index": "shop-logs", "_op_type": "create", "_source": {"msg": "", "note": "broken"}},
            {"_index": "other-logs", "_op_type": "create", "_source": {"message": "shipped", "user_id": 77}},
        ]
        ok, errors = helpers.bulk(self.es, documents, raise_on_error=False, refresh=False)
        self.assertEqual(ok, 3)
        self.assertEqual(len(errors), 1)
        (action, item), = errors[0].items()
        self.assertEqual(action, "create")
        self.assertEqual(item["status"], 400)
        self.assertIn("missing_message", item["error"]["reason"])

        placed, = self.server.wait_for('"order placed"', 1)
        self.assertEqual(placed["timestamp"], "2026-12-07T10:00:00.25Z")
        self.assertEqual(placed["level"], "info")
        self.assertEqual(placed["service"], "shop")
        self.assertEqual(placed["host"], "web-3")
        self.assertEqual(placed["attributes"]["index"], "shop-logs")
        self.assertEqual(placed["attributes"]["order"], {"id": "ORD-9", "total": 42.5})
        self.assertEqual(placed["attributes"]["ecs.host"], {"name": "web-3"})
        captured, = self.server.wait_for('"payment captured"', 1)
        self.assertEqual(captured["id"], "fixed-id-1")
        self.assertEqual(captured["level"], "warn")
        shipped, = self.server.wait_for("shipped", 1)
        self.assertEqual(shipped["user_id"], "77")
        self.assertEqual(shipped["attributes"]["index"], "other-logs")
        self.assertEqual(self.server.search("note:broken"), [])


if __name__ == "__main__":
    unittest.main()
