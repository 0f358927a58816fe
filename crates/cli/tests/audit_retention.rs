//! Audit retention through the real binary: a data directory whose oldest
//! audit events were pruned (by the store's `expire_audit`, as the retention
//! scheduler calls it) still verifies with `logbook verify`, which says how
//! many are pruned and still checks their hashes; the restarted server serves
//! the pruned events' inclusion proofs, and its export verifies.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use bench::client::HttpClient;
use serde_json::{Value, json};
use store::AuditLog as _;

const KEY: &str = "lbk_audit-retention-test-key-0123456789abcd";
const SETTINGS: &str = "[pipeline]\ncommit_interval_ms = 100\n[audit]\ncheckpoint_every_events = 10\ncheckpoint_interval_ms = 200\n[store]\nwriter_memory_bytes = 33554432\n";

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

async fn search(client: &mut HttpClient, q: &str) -> Vec<Value> {
    let page = client
        .get(&format!("/v1/audit?q={q}&limit=100&order=asc"))
        .await
        .unwrap()
        .json()
        .unwrap();
    page["events"].as_array().unwrap().clone()
}

/// `logbook verify` with the pinned key and `args`: success and what it printed.
fn verify(args: &[&str], key: &str) -> (bool, String) {
    let output = common::logbook()
        .args(["verify", "--public-key", key])
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn hex_hashes(values: &Value) -> Vec<audit::Hash> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|hex| {
            let hex = hex.as_str().unwrap();
            let mut hash = [0u8; 32];
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
            }
            hash
        })
        .collect()
}

/// The server's embedded store on `data`, as `logbook serve` opens it.
fn open_store(data: &Path) -> store::embedded::EmbeddedStore {
    let mut config = store::embedded::EmbeddedStoreConfig::new(data.join("index"));
    config.audit_dir = data.join("audit");
    config.writer_memory_bytes = 32 * 1024 * 1024;
    store::embedded::EmbeddedStore::open(&config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_events_keep_their_proofs_and_the_trail_verifies() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = common::serve_with_settings(root.path(), port, KEY, SETTINGS, Stdio::inherit());
    let mut client = common::connect_when_up(&url, KEY).await;
    // The first start's 3 events (tenant, admin, key), then 20, then 10.
    common::post_actions(&mut client, "old", 20).await;
    common::wait_for_checkpoint(&mut client, 23).await;
    common::post_actions(&mut client, "new", 10).await;
    common::wait_for_checkpoint(&mut client, 33).await;
    let old = search(&mut client, "action:old.*").await;
    let new = search(&mut client, "action:new.*").await;
    assert_eq!((old.len(), new.len()), (20, 10));
    let key = common::public_key(&mut client).await;
    stop(server);

    // Retention: everything received before the first new event.
    let cutoff = model::Timestamp::parse(new[0]["received_at"].as_str().unwrap()).unwrap();
    let store = open_store(&data);
    assert_eq!(store.expire_audit("default", cutoff).await.unwrap(), 23);
    drop(store);

    let data_dir = ["--data-dir", data.to_str().unwrap()];
    let (ok, text) = verify(&data_dir, &key);
    assert!(ok, "{text}");
    assert!(
        text.contains(
            "default: verified: 33 events, the first 23 pruned (hashes only), 33 covered by signed checkpoints"
        ),
        "{text}"
    );

    let server = common::serve_with_settings(root.path(), port, KEY, SETTINGS, Stdio::inherit());
    let mut client = common::connect_when_up(&url, KEY).await;
    assert!(search(&mut client, "action:old.*").await.is_empty());
    assert_eq!(search(&mut client, "action:new.*").await.len(), 10);
    let verifying = audit::VerifyingKey::from_text(&key).unwrap();
    // Whoever kept a pruned event can still prove it is in the trail.
    for event in [&old[0], &old[19], &new[3]] {
        let id = event["id"].as_str().unwrap();
        let proof = client
            .get(&format!("/v1/audit/{id}/proof"))
            .await
            .unwrap()
            .json()
            .unwrap();
        let seq = proof["seq"].as_u64().unwrap();
        assert_eq!(proof["pruned"], json!(seq < 23), "{proof}");
        let note = proof["checkpoint"]["note"].as_str().unwrap();
        audit::verify_event_inclusion(event, seq, &hex_hashes(&proof["proof"]), note, &verifying)
            .unwrap();
        // The recorded leaf hash of a pruned event is the hash of its bytes.
        assert_eq!(
            hex_hashes(&json!([proof["leaf_hash"]]))[0],
            audit::leaf_hash(&audit::canonical_json(event))
        );
    }
    let id = old[0]["id"].as_str().unwrap();
    assert_eq!(
        client.get(&format!("/v1/audit/{id}")).await.unwrap().status,
        404
    );
    let export = client.get("/v1/audit/export").await.unwrap();
    let header: Value =
        serde_json::from_slice(export.body.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(
        (header["format"].clone(), header["pruned"].clone()),
        (json!(3), json!(23))
    );
    let (ok, text) = verify(&["--url", &url, "--key", KEY], &key);
    assert!(ok, "{text}");
    assert!(text.contains("the first 23 pruned (hashes only)"), "{text}");
    stop(server);

    // A pruned event's recorded hash is all that is left of it, and still checked.
    let hashes = data.join("audit").join("default").join("hashes.bin");
    let mut recorded = std::fs::read(&hashes).unwrap();
    recorded[5 * 32] ^= 1;
    std::fs::write(&hashes, &recorded).unwrap();
    let (ok, text) = verify(&data_dir, &key);
    assert!(!ok, "{text}");
    assert!(text.contains("(altered)"), "{text}");
}
