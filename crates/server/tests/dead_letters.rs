//! The dead-letter admin API against a real server: letters listed, shown,
//! replayed into the queue and purged by the super-admin only, each replay
//! and purge an audit event, and every error a JSON answer. The letters are
//! written into the data directory before the server starts, as the worker
//! would have written them (the embedded store refuses nothing by itself).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::client::HttpClient;
use common::{TEST_ADMIN_PASSWORD, TestServer, admin_token, count, test_config};
use model::{BatchFormat, IngestContext, Limits, Timestamp, decode_batch};
use serde_json::{Value, json};
use store::dead_letters::{DirectoryDeadLetters, Failure};
use store::{DeadLetter, DeadLetters};

/// The letter the worker writes for an event of `tenant` with `message`,
/// refused 5 times, from the record at `position`.
fn letter(tenant: &str, message: &str, position: u64) -> DeadLetter {
    let context = IngestContext::new(tenant, Timestamp::now(), None);
    let body = serde_json::to_vec(&json!({"service": "billing", "message": message})).unwrap();
    let batch = decode_batch(&body, BatchFormat::Json, &context, &Limits::default()).unwrap();
    let events = model::decode_record(&model::encode_record(&batch), position).unwrap();
    let now = Timestamp::now();
    let failure = Failure {
        error: "the store refused the data: value too long".into(),
        attempts: 5,
        first_failed_at: now,
        last_failed_at: now,
    };
    DeadLetter::for_event(&events[0], position, failure)
}

async fn send(client: &mut HttpClient, method: &str, path: &str) -> (u16, Value) {
    let response = match method {
        "GET" => client.get(path).await.unwrap(),
        "POST" => client.post(path, "application/json", "").await.unwrap(),
        "DELETE" => client.delete(path).await.unwrap(),
        other => panic!("no method {other}"),
    };
    let body = response.json().unwrap_or(Value::Null);
    (response.status, body)
}

/// Polls `check` until it holds, for at most 20 s.
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_super_admin_lists_shows_replays_and_purges_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let letters = DirectoryDeadLetters::new(dir.path().join("dead-letter"));
    let replayed = letter("default", "replay me please", 1_000);
    let purged = letter("default", "purge me", 2_000);
    for letter in [&replayed, &purged] {
        letters.put(letter.clone()).await.unwrap();
    }
    // What an earlier version set aside for a record it could not read.
    std::fs::write(
        dir.path().join("dead-letter/00000000000000000007.record"),
        b"not a record",
    )
    .unwrap();
    let config = test_config(dir.path());
    let server = TestServer::start_in(dir, config).await;
    let mut key = server.client().await;
    let root = admin_token(&mut key).await;
    let mut admin = server.client_with(Some(&root)).await;

    // Listed in id order, without payloads.
    let (status, page) = send(&mut admin, "GET", "/v1/admin/dead-letters").await;
    assert_eq!(status, 200, "{page}");
    let listed = page["dead_letters"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "00000000000000000007",
            replayed.info.id.as_str(),
            purged.info.id.as_str()
        ]
    );
    assert_eq!(page["next"], Value::Null);
    assert_eq!(listed[0]["error"], "unreadable record");
    assert_eq!(listed[0]["tenant"], Value::Null);
    assert_eq!(listed[1]["tenant"], "default");
    assert_eq!(listed[1]["stream"], "logs");
    assert_eq!(listed[1]["attempts"], 5);
    assert!(listed.iter().all(|l| l.get("payload").is_none()));
    let (_, first) = send(&mut admin, "GET", "/v1/admin/dead-letters?limit=1").await;
    assert_eq!(first["next"], "00000000000000000007");
    let (_, rest) = send(
        &mut admin,
        "GET",
        "/v1/admin/dead-letters?limit=2&after=00000000000000000007",
    )
    .await;
    assert_eq!(rest["dead_letters"].as_array().unwrap().len(), 2);
    for bad in ["?limit=0", "?limit=many", "?sort=id"] {
        let (status, error) =
            send(&mut admin, "GET", &format!("/v1/admin/dead-letters{bad}")).await;
        assert_eq!(
            (status, &error["code"]),
            (400, &json!("invalid_parameter")),
            "{bad}"
        );
    }

    // One letter with its payload and its events.
    let path = format!("/v1/admin/dead-letters/{}", replayed.info.id);
    let (status, shown) = send(&mut admin, "GET", &path).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["events"][0]["message"], "replay me please");
    assert!(
        shown["payload"]
            .as_str()
            .unwrap()
            .contains("replay me please")
    );
    let (_, old) = send(
        &mut admin,
        "GET",
        "/v1/admin/dead-letters/00000000000000000007",
    )
    .await;
    assert_eq!(old["payload"], "not a record");
    assert!(old.get("events").is_none());
    for unknown in ["00000000000000000999", "a.b", "%2E%2E"] {
        for (method, suffix) in [("GET", ""), ("POST", "/replay"), ("DELETE", "")] {
            let (status, error) = send(
                &mut admin,
                method,
                &format!("/v1/admin/dead-letters/{unknown}{suffix}"),
            )
            .await;
            assert_eq!(status, 404, "{method} {unknown}{suffix}: {error}");
            assert_eq!(error["code"], "not_found");
        }
    }

    // Nobody but the super-admin: not the tenant's key, nor a tenant admin.
    let created = admin
        .post(
            "/v1/users",
            "application/json",
            serde_json::to_vec(
                &json!({"username": "ops", "password": TEST_ADMIN_PASSWORD, "role": "admin"}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{:?}", created.json());
    let mut ops = server.client_with(None).await;
    let login = ops
        .post(
            "/v1/auth/login",
            "application/json",
            serde_json::to_vec(&json!({"username": "ops", "password": TEST_ADMIN_PASSWORD}))
                .unwrap(),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    let mut ops = server.client_with(login["access_token"].as_str()).await;
    let mut anonymous = server.client_with(None).await;
    for (method, path) in [
        ("GET", "/v1/admin/dead-letters".to_owned()),
        ("GET", path.clone()),
        ("POST", format!("{path}/replay")),
        ("DELETE", path.clone()),
    ] {
        for caller in [&mut key, &mut ops] {
            let (status, error) = send(caller, method, &path).await;
            assert_eq!(
                (status, &error["code"]),
                (403, &json!("forbidden")),
                "{method} {path}"
            );
        }
        let (status, _) = send(&mut anonymous, method, &path).await;
        assert_eq!(status, 401, "{method} {path}");
    }

    // A replay goes through the queue and is stored; the letter is gone.
    let (status, answer) = send(&mut admin, "POST", &format!("{path}/replay")).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["id"], replayed.info.id.as_str());
    assert!(answer["position"].as_u64().is_some(), "{answer}");
    eventually("the replayed event is stored", async || {
        count(&mut key, "\"replay me please\"").await == 1
    })
    .await;
    let (status, _) = send(&mut admin, "GET", &path).await;
    assert_eq!(status, 404);
    let (status, _) = send(&mut admin, "POST", &format!("{path}/replay")).await;
    assert_eq!(status, 404, "a letter is replayed once");

    // A purge removes a letter for good.
    let purge_path = format!("/v1/admin/dead-letters/{}", purged.info.id);
    let (status, answer) = send(&mut admin, "DELETE", &purge_path).await;
    assert_eq!((status, &answer["purged"]), (200, &json!(true)), "{answer}");
    let (status, _) = send(&mut admin, "DELETE", &purge_path).await;
    assert_eq!(status, 404);
    assert_eq!(count(&mut key, "purge").await, 0);

    // A record nobody can read is read again by the worker, and becomes a
    // dead letter again, under the position it was appended at.
    let (status, answer) = send(
        &mut admin,
        "POST",
        "/v1/admin/dead-letters/00000000000000000007/replay",
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let again = format!("{:020}", answer["position"].as_u64().unwrap());
    eventually("the unreadable record is a dead letter again", async || {
        let (_, page) = send(&mut admin, "GET", "/v1/admin/dead-letters").await;
        page["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].clone())
            .collect::<Vec<_>>()
            == [json!(again)]
    })
    .await;

    // Each replay and purge is in the audit trail, by the super-admin.
    eventually(
        "the audit trail records the replays and the purge",
        async || {
            let page = key
                .get("/v1/audit?q=action:dead_letter.*&order=asc")
                .await
                .unwrap()
                .json()
                .unwrap();
            page["events"].as_array().unwrap().len() == 3
        },
    )
    .await;
    let page = key
        .get("/v1/audit?q=action:dead_letter.*&order=asc")
        .await
        .unwrap()
        .json()
        .unwrap();
    let events = page["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|event| event["attributes"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "dead_letter.replay",
            "dead_letter.purge",
            "dead_letter.replay"
        ]
    );
    assert_eq!(events[0]["attributes"]["actor"]["name"], "admin");
    assert_eq!(
        events[0]["attributes"]["target"]["id"],
        replayed.info.id.as_str()
    );
    assert_eq!(events[0]["source"], "logbook");
    server.stop().await;
}
