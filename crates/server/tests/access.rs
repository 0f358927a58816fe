//! Access control end to end: every endpoint × every kind of caller × own and
//! other tenant, the attacks the issue lists, signing, rate limits and the
//! audit events Logbook writes about itself. The whole file runs on SQLite and,
//! when `LOGBOOK_TEST_POSTGRES_URL` is set, again on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bench::client::{HttpClient, Response};
use common::{TEST_ADMIN_PASSWORD, TestServer, wait_drained};
use hyper::Request;
use serde_json::{Value, json};

/// The metadata databases to run against: SQLite always, PostgreSQL if configured.
async fn engines(test: &str) -> Vec<(&'static str, Option<String>)> {
    let mut engines = vec![("sqlite", None)];
    if let Some(url) = meta::testing::postgres_url(test) {
        let schema = meta::testing::fresh_postgres_schema(&url).await.unwrap();
        engines.push(("postgres", Some(schema)));
    }
    engines
}

async fn start(
    database_url: Option<String>,
    adjust: impl FnOnce(&mut server::Config),
) -> TestServer {
    TestServer::start_with(|config| {
        config.database_url = database_url;
        adjust(config);
    })
    .await
}

async fn send(client: &mut HttpClient, method: &str, path: &str, body: Option<Value>) -> Response {
    let mut request = Request::builder().method(method).uri(path);
    let bytes = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            serde_json::to_vec(&body).unwrap()
        }
        None => Vec::new(),
    };
    client
        .send(
            request
                .body(http_body_util::Full::new(bytes.into()))
                .unwrap(),
        )
        .await
        .unwrap()
}

fn code(response: &Response) -> String {
    response
        .json()
        .map(|body| body["code"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

async fn login(server: &TestServer, username: &str, password: &str) -> Value {
    let mut client = server.client_with(None).await;
    let response = send(
        &mut client,
        "POST",
        "/v1/auth/login",
        Some(json!({"username": username, "password": password})),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "login {username}: {:?}",
        response.json()
    );
    response.json().unwrap()
}

async fn token_of(server: &TestServer, username: &str, password: &str) -> String {
    login(server, username, password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn create_key(client: &mut HttpClient, name: &str, scopes: &[&str]) -> (String, String) {
    let response = send(
        client,
        "POST",
        "/v1/keys",
        Some(json!({"name": name, "scopes": scopes})),
    )
    .await;
    assert_eq!(response.status, 201, "{:?}", response.json());
    let body = response.json().unwrap();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

async fn create_user(
    client: &mut HttpClient,
    tenant: Option<&str>,
    username: &str,
    role: &str,
) -> String {
    let mut body = json!({"username": username, "password": USER_PASSWORD, "role": role});
    if let Some(tenant) = tenant {
        body["tenant"] = json!(tenant);
    }
    let response = send(client, "POST", "/v1/users", Some(body)).await;
    assert_eq!(response.status, 201, "{:?}", response.json());
    response.json().unwrap()["id"].as_str().unwrap().to_owned()
}

/// The password of every user the tests create.
const USER_PASSWORD: &str = "swordfish-and-chips-42";

/// Who calls in the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Admin,
    Auditor,
    Developer,
    LogsWriter,
    LogsReader,
    AuditWriter,
    AuditReader,
}

const CALLERS: [Caller; 8] = [
    Caller::Anonymous,
    Caller::Admin,
    Caller::Auditor,
    Caller::Developer,
    Caller::LogsWriter,
    Caller::LogsReader,
    Caller::AuditWriter,
    Caller::AuditReader,
];

/// The README's permission matrix, written out independently of the server's table.
fn allowed(caller: Caller, method: &str, path: &str) -> bool {
    use Caller::*;
    // HEAD is GET without a body.
    let method = if method == "HEAD" { "GET" } else { method };
    let route = path.split('?').next().unwrap();
    let family = route.split('/').nth(2).unwrap_or("");
    match (method, family) {
        // Every tenant's figures: the super-admin's.
        _ if route == "/metrics" => caller == Admin,
        (_, "healthz" | "readyz") | ("GET", "") => true,
        // Server-wide figures: the super-admin's, like the tenants.
        (_, "admin") => caller == Admin,
        ("POST", "logs") => caller == LogsWriter,
        ("GET", "logs" | "stats") => matches!(caller, Admin | Auditor | Developer | LogsReader),
        ("POST", "audit") => caller == AuditWriter,
        ("GET", "audit") => matches!(caller, Admin | Auditor | AuditReader),
        (_, "users" | "keys" | "settings") => caller == Admin,
        ("GET", "alerts") if route == "/v1/alerts" => {
            matches!(caller, Admin | Auditor | Developer | LogsReader)
        }
        (_, "alerts") => caller == Admin,
        (_, "auth") if route == "/v1/auth/me" => caller != Anonymous,
        (_, "auth") => matches!(caller, Admin | Auditor | Developer),
        // The default tenant's admin is the bootstrap super-admin; other admins are not.
        (_, "tenants") => caller == Admin,
        _ => panic!("no expectation for {method} {path}"),
    }
}

/// Every endpoint with a request that is valid apart from access. `{log}`,
/// `{audit}`, `{rule}`, `{user}` and `{key}` are replaced by ids of the tenant under test.
const ENDPOINTS: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs/", None),
    ("GET", "/metrics", None),
    ("POST", "/v1/logs", Some(r#"{"message":"matrix"}"#)),
    ("GET", "/v1/logs?q=matrix", None),
    ("GET", "/v1/logs/histogram", None),
    ("GET", "/v1/logs/{log}", None),
    ("GET", "/v1/stats", None),
    (
        "POST",
        "/v1/audit",
        Some(r#"{"action":"matrix.check","userId":"u1","message":"matrix"}"#),
    ),
    ("GET", "/v1/audit", None),
    ("GET", "/v1/audit/{audit}", None),
    ("GET", "/v1/auth/me", None),
    ("GET", "/v1/users", None),
    (
        "POST",
        "/v1/users",
        Some(r#"{"username":"{fresh}","password":"matrix-password-long","role":"developer"}"#),
    ),
    ("PATCH", "/v1/users/{user}", Some(r#"{"role":"developer"}"#)),
    ("GET", "/v1/keys", None),
    (
        "POST",
        "/v1/keys",
        Some(r#"{"name":"matrix","scopes":["logs:read"]}"#),
    ),
    ("DELETE", "/v1/keys/{key}", None),
    ("GET", "/v1/settings", None),
    (
        "PUT",
        "/v1/settings",
        Some(r#"{"self_registration":false}"#),
    ),
    ("GET", "/v1/alerts", None),
    ("GET", "/v1/alerts/rules", None),
    (
        "POST",
        "/v1/alerts/rules",
        Some(
            r#"{"name":"{fresh}","query":"level:error","threshold":1000000,"window":"5m","webhook":{"url":"https://hooks.example/x"}}"#,
        ),
    ),
    ("GET", "/v1/alerts/rules/{rule}", None),
    (
        "PATCH",
        "/v1/alerts/rules/{rule}",
        Some(r#"{"threshold":2000000}"#),
    ),
    (
        "PUT",
        "/v1/alerts/rules/{rule}",
        Some(
            r#"{"name":"{fresh}","query":"level:warn","threshold":1000000,"window":"5m","webhook":{"url":"https://hooks.example/y"}}"#,
        ),
    ),
    ("DELETE", "/v1/alerts/rules/{rule}", None),
    ("GET", "/v1/tenants", None),
    ("POST", "/v1/tenants", Some(r#"{"id":"{fresh}"}"#)),
    ("GET", "/v1/admin/status", None),
    ("GET", "/v1/admin/dead-letters", None),
    ("HEAD", "/v1/logs?q=matrix", None),
    ("HEAD", "/v1/users", None),
];

/// One tenant's callers and the ids of some of its things.
struct Tenant {
    tokens: Vec<(Caller, Option<String>)>,
    log_id: String,
    audit_id: String,
    /// An alert rule, which the matrix deletes last.
    rule_id: String,
    /// A developer the matrix may change.
    user_id: String,
    /// Keys the matrix may revoke, one per allowed caller.
    spare_keys: Vec<String>,
}

impl Tenant {
    fn token(&self, caller: Caller) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(c, _)| *c == caller)
            .and_then(|(_, t)| t.as_deref())
    }
}

/// Sets up a tenant: its admin (whose client is `admin`), users of each role and keys of each scope.
async fn populate(
    server: &TestServer,
    admin: &mut HttpClient,
    admin_token: String,
    prefix: &str,
) -> Tenant {
    create_user(admin, None, &format!("{prefix}-auditor"), "auditor").await;
    create_user(admin, None, &format!("{prefix}-developer"), "developer").await;
    let user_id = create_user(admin, None, &format!("{prefix}-target"), "developer").await;
    let auditor = token_of(server, &format!("{prefix}-auditor"), USER_PASSWORD).await;
    let developer = token_of(server, &format!("{prefix}-developer"), USER_PASSWORD).await;
    let (_, logs_writer) = create_key(admin, "w", &["logs:write"]).await;
    let (_, logs_reader) = create_key(admin, "r", &["logs:read"]).await;
    let (_, audit_writer) = create_key(admin, "aw", &["audit:write"]).await;
    let (_, audit_reader) = create_key(admin, "ar", &["audit:read"]).await;
    let mut spare_keys = Vec::new();
    for _ in 0..2 {
        spare_keys.push(create_key(admin, "spare", &["logs:read"]).await.0);
    }
    let rule = send(
        admin,
        "POST",
        "/v1/alerts/rules",
        Some(
            json!({"name": "matrix", "query": "level:error", "threshold": 1_000_000,
                    "window": "5m", "webhook": {"url": "https://hooks.example/x"}}),
        ),
    )
    .await;
    assert_eq!(rule.status, 201, "{:?}", rule.json());
    let rule_id = rule.json().unwrap()["id"].as_str().unwrap().to_owned();

    let mut writer = server.client_with(Some(&logs_writer)).await;
    let response = writer
        .post(
            "/v1/logs",
            "application/json",
            format!(r#"{{"message":"{prefix} secret log"}}"#),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202);
    let log_id = response.json().unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let mut audit = server.client_with(Some(&audit_writer)).await;
    let response = audit
        .post(
            "/v1/audit",
            "application/json",
            format!(
                r#"{{"userId":"u1","action":"{prefix}.secret","metadata":{{"ip":"192.168.1.1"}}}}"#
            ),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 202, "{:?}", response.json());
    let audit_id = response.json().unwrap()["ids"][0]
        .as_str()
        .unwrap()
        .to_owned();

    Tenant {
        tokens: vec![
            (Caller::Anonymous, None),
            (Caller::Admin, Some(admin_token)),
            (Caller::Auditor, Some(auditor)),
            (Caller::Developer, Some(developer)),
            (Caller::LogsWriter, Some(logs_writer)),
            (Caller::LogsReader, Some(logs_reader)),
            (Caller::AuditWriter, Some(audit_writer)),
            (Caller::AuditReader, Some(audit_reader)),
        ],
        log_id,
        audit_id,
        rule_id,
        user_id,
        spare_keys,
    }
}

fn fill(template: &str, tenant: &Tenant, fresh: &str, key: &str) -> String {
    template
        .replace("{log}", &tenant.log_id)
        .replace("{audit}", &tenant.audit_id)
        .replace("{rule}", &tenant.rule_id)
        .replace("{user}", &tenant.user_id)
        .replace("{key}", key)
        .replace("{fresh}", fresh)
}

/// Two tenants, each fully populated; the default tenant's admin is the super-admin.
async fn two_tenants(server: &TestServer) -> (Tenant, Tenant, String) {
    let root = token_of(server, "admin", TEST_ADMIN_PASSWORD).await;
    let mut root_client = server.client_with(Some(&root)).await;
    let created = send(
        &mut root_client,
        "POST",
        "/v1/tenants",
        Some(json!({"id": "globex", "name": "Globex"})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    create_user(&mut root_client, Some("globex"), "globex-admin", "admin").await;
    let own = populate(server, &mut root_client, root.clone(), "acme").await;
    let other_token = token_of(server, "globex-admin", USER_PASSWORD).await;
    let mut other_client = server.client_with(Some(&other_token)).await;
    let other = populate(server, &mut other_client, other_token, "globex").await;
    (own, other, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_by_every_caller_in_own_and_other_tenant() {
    for (engine, database_url) in
        engines("every_endpoint_by_every_caller_in_own_and_other_tenant").await
    {
        let server = start(database_url, |_| {}).await;
        let (own, other, _root) = two_tenants(&server).await;
        wait_drained(&mut server.client().await).await;

        let mut fresh = 0;
        for caller in CALLERS {
            let token = own.token(caller).map(str::to_owned);
            let mut client = server.client_with(token.as_deref()).await;
            for (method, template, body) in ENDPOINTS {
                fresh += 1;
                let fresh_name = format!("m{fresh}");
                let spare = own.spare_keys[(fresh % 2) as usize].clone();
                let path = fill(template, &own, &fresh_name, &spare);
                let body = body
                    .map(|b| serde_json::from_str(&fill(b, &own, &fresh_name, &spare)).unwrap());
                let response = send(&mut client, method, &path, body).await;
                let expected = allowed(caller, method, &path);
                if expected {
                    assert!(
                        response.status < 400,
                        "{engine}: {caller:?} {method} {path} should be allowed, got {} {:?}",
                        response.status,
                        response.json()
                    );
                } else {
                    let want = if caller == Caller::Anonymous {
                        401
                    } else {
                        403
                    };
                    assert_eq!(
                        response.status,
                        want,
                        "{engine}: {caller:?} {method} {path} should be refused, got {:?}",
                        response.json()
                    );
                    // An answer to HEAD has no body to name its code.
                    assert!(
                        *method == "HEAD"
                            || matches!(
                                code(&response).as_str(),
                                "missing_credentials" | "forbidden"
                            )
                    );
                }

                // The same request aimed at the other tenant's things never reaches them.
                let foreign = fill(template, &other, &fresh_name, &other.spare_keys[0]);
                if expected && foreign != path && *method != "POST" {
                    let response = send(&mut client, method, &foreign, None).await;
                    let json_body = if *method == "PATCH" {
                        Some(json!({"role": "admin"}))
                    } else {
                        None
                    };
                    let response = if json_body.is_some() {
                        send(&mut client, method, &foreign, json_body).await
                    } else {
                        response
                    };
                    assert_eq!(
                        response.status,
                        404,
                        "{engine}: {caller:?} {method} {foreign} reached another tenant: {:?}",
                        response.json()
                    );
                }
            }
        }

        // Searches never return the other tenant's events, whatever the query or cursor.
        for (caller, path) in [
            (Caller::Admin, "/v1/logs?q=*&limit=1000"),
            (Caller::LogsReader, "/v1/logs?q=globex"),
            (Caller::Auditor, "/v1/audit?q=*&limit=1000"),
            (Caller::AuditReader, "/v1/audit?q=action:globex.secret"),
        ] {
            let mut client = server.client_with(own.token(caller)).await;
            let body = client.get(path).await.unwrap().json().unwrap();
            for event in body["events"].as_array().unwrap() {
                assert_eq!(
                    event["tenant"], "default",
                    "{engine}: {path} leaked {event}"
                );
            }
        }
        let mut foreign_reader = server.client_with(other.token(Caller::LogsReader)).await;
        let page = foreign_reader
            .get("/v1/logs?limit=1")
            .await
            .unwrap()
            .json()
            .unwrap();
        let cursor = page["next_cursor"].as_str().map(str::to_owned);
        let mut reader = server.client_with(own.token(Caller::LogsReader)).await;
        if let Some(cursor) = cursor {
            let body = reader
                .get(&format!("/v1/logs?cursor={cursor}"))
                .await
                .unwrap()
                .json()
                .unwrap();
            for event in body["events"].as_array().unwrap() {
                assert_eq!(
                    event["tenant"], "default",
                    "{engine}: a foreign cursor leaked {event}"
                );
            }
        }
        let body = reader
            .get(&format!("/v1/logs?q=id:{}", other.log_id))
            .await
            .unwrap()
            .json()
            .unwrap();
        assert!(body["events"].as_array().unwrap().is_empty(), "{engine}");

        // Tenants are the super-admin's; the other tenant's admin is no super-admin.
        let mut other_admin = server.client_with(other.token(Caller::Admin)).await;
        assert_eq!(other_admin.get("/v1/tenants").await.unwrap().status, 403);
        let sneaky = send(
            &mut other_admin,
            "POST",
            "/v1/users",
            Some(json!({"username": "sneaky", "password": "sneaky-password-long", "role": "admin", "tenant": "default"})),
        )
        .await;
        assert_eq!(sneaky.status, 403, "{engine}");
        server.stop().await;
    }
}

#[test]
fn every_route_has_an_access_rule() {
    for (method, template, _) in ENDPOINTS {
        let route = template
            .split('?')
            .next()
            .unwrap()
            .replace("{log}", "{id}")
            .replace("{audit}", "{id}")
            .replace("{rule}", "{id}")
            .replace("{user}", "{id}")
            .replace("{key}", "{id}");
        let method: hyper::Method = method.parse().unwrap();
        assert!(
            api::access::rule_for(&method, &route).is_some(),
            "{method} {route}"
        );
    }
    for route in [
        "/v1/auth/login",
        "/v1/auth/refresh",
        "/v1/auth/register",
        "/v1/auth/logout",
        "/v1/auth/password",
    ] {
        assert!(
            api::access::rule_for(&hyper::Method::POST, route).is_some(),
            "{route}"
        );
    }
    assert!(api::access::rule_for(&hyper::Method::GET, "/v1/secret").is_none());
    // The documentation's public paths open nothing beside them.
    for route in ["/docs/{*rest}", "/docs/{file}", "/openapi.yaml", "/v1/docs"] {
        assert!(
            api::access::rule_for(&hyper::Method::GET, route).is_none(),
            "{route}"
        );
    }
    assert!(api::access::rule_for(&hyper::Method::POST, "/openapi.json").is_none());
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_and_forged_credentials_are_refused_with_clear_errors() {
    for (engine, database_url) in
        engines("bad_and_forged_credentials_are_refused_with_clear_errors").await
    {
        let server = start(database_url, |config| {
            config.auth.access_token_ttl_seconds = 2
        })
        .await;
        let session = login(&server, "admin", TEST_ADMIN_PASSWORD).await;
        let token = session["access_token"].as_str().unwrap().to_owned();
        let (header, rest) = token.split_once('.').unwrap();
        let (payload, _signature) = rest.split_once('.').unwrap();

        let claims: Value = serde_json::from_slice(&{
            let mut padded = payload.replace('-', "+").replace('_', "/");
            while padded.len() % 4 != 0 {
                padded.push('=');
            }
            decode_b64(&padded)
        })
        .unwrap();
        let mut escalated = claims.clone();
        escalated["tenant"] = json!("globex");
        let tampered = format!(
            "{header}.{}.{}",
            b64(escalated.to_string().as_bytes()),
            rest.split_once('.').unwrap().1
        );
        let alg_none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
        let wrong_key = {
            let key = auth::jwt::JwtKey::new(&[7u8; 32]).unwrap();
            let claims: auth::jwt::Claims = serde_json::from_value(claims.clone()).unwrap();
            auth::jwt::encode(&key, &claims)
        };
        let huge = format!("Bearer {}", "a".repeat(10_000));
        let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
            ("missing", None, 401, "missing_credentials"),
            (
                "not bearer",
                Some("Basic YWRtaW46eA==".into()),
                401,
                "invalid_credentials",
            ),
            (
                "empty bearer",
                Some("Bearer ".into()),
                401,
                "invalid_credentials",
            ),
            (
                "unknown key",
                Some("Bearer lbk_not-a-key-of-this-server-at-all".into()),
                401,
                "invalid_credentials",
            ),
            (
                "spaces inside",
                Some("Bearer lbk_has spaces inside it".into()),
                401,
                "invalid_credentials",
            ),
            ("oversized", Some(huge), 401, "invalid_credentials"),
            (
                "alg none",
                Some(format!("Bearer {alg_none}")),
                401,
                "invalid_token",
            ),
            (
                "wrong key",
                Some(format!("Bearer {wrong_key}")),
                401,
                "invalid_token",
            ),
            (
                "tampered claims",
                Some(format!("Bearer {tampered}")),
                401,
                "invalid_token",
            ),
            (
                "garbage jwt",
                Some("Bearer eyJ.eyJ.x".into()),
                401,
                "invalid_token",
            ),
        ];
        let mut client = server.client_with(None).await;
        for (name, authorization, status, expected_code) in cases {
            let mut request = Request::get("/v1/logs");
            if let Some(value) = &authorization {
                request = request.header("authorization", value.as_str());
            }
            let response = client
                .send(request.body(http_body_util::Full::default()).unwrap())
                .await
                .unwrap();
            assert_eq!(
                (response.status, code(&response).as_str()),
                (status, expected_code),
                "{engine}: {name}"
            );
            if status == 401 {
                assert!(
                    response.headers.contains_key("www-authenticate"),
                    "{engine}: {name}"
                );
            }
            let body = response.json().unwrap();
            assert!(
                body["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{engine}: {name}"
            );
        }

        // The genuine token works, then expires.
        let mut admin = server.client_with(Some(&token)).await;
        assert_eq!(admin.get("/v1/logs").await.unwrap().status, 200);
        tokio::time::sleep(Duration::from_millis(3_100)).await;
        let expired = admin.get("/v1/logs").await.unwrap();
        assert_eq!(
            (expired.status, code(&expired).as_str()),
            (401, "token_expired"),
            "{engine}"
        );

        // Refresh rotates; the old refresh token then revokes the session.
        let refresh = session["refresh_token"].as_str().unwrap();
        let mut anonymous = server.client_with(None).await;
        let rotated = send(
            &mut anonymous,
            "POST",
            "/v1/auth/refresh",
            Some(json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(rotated.status, 200, "{engine}");
        let rotated = rotated.json().unwrap();
        let new_access = rotated["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            server
                .client_with(Some(&new_access))
                .await
                .get("/v1/logs")
                .await
                .unwrap()
                .status,
            200
        );
        let replay = send(
            &mut anonymous,
            "POST",
            "/v1/auth/refresh",
            Some(json!({"refresh_token": refresh})),
        )
        .await;
        assert_eq!(
            (replay.status, code(&replay).as_str()),
            (401, "refresh_token_reused"),
            "{engine}"
        );
        let after = server
            .client_with(Some(&new_access))
            .await
            .get("/v1/logs")
            .await
            .unwrap();
        assert_eq!(
            (after.status, code(&after).as_str()),
            (401, "session_revoked"),
            "{engine}"
        );
        let newer = send(
            &mut anonymous,
            "POST",
            "/v1/auth/refresh",
            Some(json!({"refresh_token": rotated["refresh_token"]})),
        )
        .await;
        assert_eq!(
            (newer.status, code(&newer).as_str()),
            (401, "invalid_refresh_token"),
            "{engine}"
        );

        // Logout revokes the session and its refresh token.
        let session = login(&server, "admin", TEST_ADMIN_PASSWORD).await;
        let mut admin = server.client_with(session["access_token"].as_str()).await;
        assert_eq!(
            send(&mut admin, "POST", "/v1/auth/logout", None)
                .await
                .status,
            204
        );
        assert_eq!(
            code(&admin.get("/v1/logs").await.unwrap()),
            "session_revoked"
        );
        let refresh = send(
            &mut anonymous,
            "POST",
            "/v1/auth/refresh",
            Some(json!({"refresh_token": session["refresh_token"]})),
        )
        .await;
        assert_eq!(refresh.status, 401, "{engine}");

        // A revoked key stops working at once; a key outside its scopes gets 403.
        let session = login(&server, "admin", TEST_ADMIN_PASSWORD).await;
        let mut admin = server.client_with(session["access_token"].as_str()).await;
        let (key_id, key) = create_key(&mut admin, "short-lived", &["logs:read"]).await;
        let mut keyed = server.client_with(Some(&key)).await;
        assert_eq!(keyed.get("/v1/logs").await.unwrap().status, 200);
        let scope = keyed
            .post("/v1/logs", "application/json", r#"{"message":"m"}"#)
            .await
            .unwrap();
        assert_eq!((scope.status, code(&scope).as_str()), (403, "forbidden"));
        assert!(
            scope.json().unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("logs:write")
        );
        assert_eq!(
            send(&mut admin, "DELETE", &format!("/v1/keys/{key_id}"), None)
                .await
                .status,
            200
        );
        let revoked = keyed.get("/v1/logs").await.unwrap();
        assert_eq!(
            (revoked.status, code(&revoked).as_str()),
            (401, "key_revoked"),
            "{engine}"
        );

        // Malformed and oversized login bodies.
        for (body, status) in [
            ("{", 400),
            (r#"{"username":"admin"}"#, 422),
            (r#"{"username":"admin","password":"x","extra":1}"#, 422),
        ] {
            let response = anonymous
                .post("/v1/auth/login", "application/json", body)
                .await
                .unwrap();
            assert!(
                response.status == status || response.status == 400,
                "{engine}: {body} -> {}",
                response.status
            );
            assert!(response.json().unwrap()["code"].is_string());
        }
        let huge = send(
            &mut anonymous,
            "POST",
            "/v1/auth/login",
            Some(json!({"username": "admin", "password": "p".repeat(5_000)})),
        )
        .await;
        assert_eq!(
            (huge.status, code(&huge).as_str()),
            (400, "credentials_too_large"),
            "{engine}"
        );
        server.stop().await;
    }
}

fn decode_b64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk
            .iter()
            .filter(|c| **c != b'=')
            .map(|c| value(*c))
            .collect();
        let n = digits
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        for i in 0..digits.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_logins_are_throttled_per_account() {
    // Room for every racing attempt's password check: this is about the throttle.
    let server = start(None, |config| config.limits.concurrent_password_checks = 16).await;
    let mut client = server.client_with(None).await;
    let wrong = json!({"username": "admin", "password": "not-the-password"});
    for attempt in 0..5 {
        let response = send(&mut client, "POST", "/v1/auth/login", Some(wrong.clone())).await;
        assert_eq!(
            (response.status, code(&response).as_str()),
            (401, "invalid_login"),
            "attempt {attempt}"
        );
    }
    // Even the right password waits now: the account is throttled.
    let right = json!({"username": "admin", "password": TEST_ADMIN_PASSWORD});
    let throttled = send(&mut client, "POST", "/v1/auth/login", Some(right)).await;
    assert_eq!(
        (throttled.status, code(&throttled).as_str()),
        (429, "too_many_login_attempts")
    );
    assert!(throttled.headers.contains_key("retry-after"));
    // Attempts racing each other cannot slip past the limit while passwords are checked.
    let mut racing = Vec::new();
    for _ in 0..12 {
        let url = server.url.clone();
        racing.push(tokio::spawn(async move {
            let mut client = HttpClient::connect(&url).await.unwrap();
            let body = json!({"username": "racer", "password": "not-the-password"});
            send(&mut client, "POST", "/v1/auth/login", Some(body))
                .await
                .status
        }));
    }
    let mut answered = Vec::new();
    for attempt in racing {
        answered.push(attempt.await.unwrap());
    }
    assert_eq!(
        answered.iter().filter(|status| **status == 401).count(),
        5,
        "{answered:?}"
    );
    assert_eq!(
        answered.iter().filter(|status| **status == 429).count(),
        7,
        "{answered:?}"
    );
    // Unknown users get the same answer as wrong passwords.
    let unknown = send(
        &mut client,
        "POST",
        "/v1/auth/login",
        Some(json!({"username": "nobody", "password": "whatever-password"})),
    )
    .await;
    assert_eq!(
        (unknown.status, code(&unknown).as_str()),
        (401, "invalid_login")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_keys_must_sign_and_cannot_replay() {
    let server = start(None, |_| {}).await;
    let mut admin = server.client().await;
    let root = token_of(&server, "admin", TEST_ADMIN_PASSWORD).await;
    let mut root_client = server.client_with(Some(&root)).await;
    let created = send(
        &mut root_client,
        "POST",
        "/v1/keys",
        Some(json!({"name": "signer", "scopes": ["logs:write"], "signed": true})),
    )
    .await;
    assert_eq!(created.status, 201);
    let created = created.json().unwrap();
    let (key_id, secret) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );

    let body = br#"{"message":"signed hello"}"#;
    let signed = |timestamp: i64, signature: Option<String>| {
        let ts = timestamp.to_string();
        let signature =
            signature.unwrap_or_else(|| auth::signing::sign(secret, &ts, "POST", "/v1/logs", body));
        Request::post("/v1/logs")
            .header("content-type", "application/json")
            .header("x-logbook-key-id", key_id)
            .header("x-logbook-timestamp", ts)
            .header("x-logbook-signature", signature)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
            .unwrap()
    };
    let now = meta::now_millis() / 1000;
    let mut client = server.client_with(None).await;
    let first = signed(now, None);
    let again = signed(now, None);
    assert_eq!(client.send(first).await.unwrap().status, 202);
    let replay = client.send(again).await.unwrap();
    assert_eq!(
        (replay.status, code(&replay).as_str()),
        (401, "replayed_signature")
    );
    let stale = client.send(signed(now - 3600, None)).await.unwrap();
    assert_eq!(
        (stale.status, code(&stale).as_str()),
        (401, "signature_expired")
    );
    let forged = client
        .send(signed(now, Some("0".repeat(64))))
        .await
        .unwrap();
    assert_eq!(
        (forged.status, code(&forged).as_str()),
        (401, "invalid_signature")
    );
    // The body is covered: a different body under a valid signature fails.
    let ts = (now + 1).to_string();
    let signature = auth::signing::sign(secret, &ts, "POST", "/v1/logs", body);
    let swapped = Request::post("/v1/logs")
        .header("content-type", "application/json")
        .header("x-logbook-key-id", key_id)
        .header("x-logbook-timestamp", ts)
        .header("x-logbook-signature", signature)
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"message":"tampered"}"#,
        )))
        .unwrap();
    assert_eq!(
        code(&client.send(swapped).await.unwrap()),
        "invalid_signature"
    );
    // A signing key cannot be used as a plain bearer token.
    let bearer = server
        .client_with(Some(secret))
        .await
        .post("/v1/logs", "application/json", body.to_vec())
        .await
        .unwrap();
    assert_eq!(
        (bearer.status, code(&bearer).as_str()),
        (401, "signature_required")
    );
    assert_eq!(admin.get("/v1/auth/me").await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after_and_count_events() {
    let server = start(None, |config| {
        config.limits.requests_per_second = 1.0;
        config.limits.request_burst = 5.0;
        config.limits.tenant_events_per_second = 1.0;
        config.limits.tenant_event_burst = 100.0;
    })
    .await;
    let mut client = server.client().await;
    let batch = |n: usize| {
        json!(
            (0..n)
                .map(|i| json!({"message": format!("event {i}")}))
                .collect::<Vec<_>>()
        )
    };
    let first = send(&mut client, "POST", "/v1/logs", Some(batch(60))).await;
    assert_eq!(first.status, 202);
    assert!(first.headers.contains_key("ratelimit-remaining"));
    // 60 of 100 events spent: 60 more do not fit, whatever the request count.
    let second = send(&mut client, "POST", "/v1/logs", Some(batch(60))).await;
    assert_eq!(
        (second.status, code(&second).as_str()),
        (429, "rate_limited")
    );
    assert!(second.headers.contains_key("retry-after"));
    // More events than the burst can ever allow: 413, not a retry.
    let too_big = send(&mut client, "POST", "/v1/logs", Some(batch(150))).await;
    assert_eq!(
        (too_big.status, code(&too_big).as_str()),
        (413, "exceeds_rate_limit")
    );
    // The request bucket (burst 5) is now empty too.
    let mut limited = None;
    for _ in 0..5 {
        let response = client.get("/v1/logs").await.unwrap();
        if response.status == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the request bucket runs out");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    server.stop().await;
}

/// Waits until `q` finds at least `n` audit events, and returns them.
async fn audit_events(client: &mut HttpClient, q: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let path = format!(
            "/v1/audit?limit=1000&q={}",
            bench::client::percent_encode(q)
        );
        let response = client.get(&path).await.unwrap();
        assert_eq!(response.status, 200, "{:?}", response.json());
        let events = response.json().unwrap()["events"]
            .as_array()
            .unwrap()
            .clone();
        if events.len() >= n {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: found {} of {n}: {events:?}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_actions_land_in_the_audit_trail_and_sessions_follow_passwords() {
    for (engine, database_url) in
        engines("security_actions_land_in_the_audit_trail_and_sessions_follow_passwords").await
    {
        let server = start(database_url, |_| {}).await;
        let mut anonymous = server.client_with(None).await;
        let wrong = send(
            &mut anonymous,
            "POST",
            "/v1/auth/login",
            Some(json!({"username": "admin", "password": "wrong-password-here"})),
        )
        .await;
        assert_eq!(wrong.status, 401);
        let first = login(&server, "admin", TEST_ADMIN_PASSWORD).await;
        let second = login(&server, "admin", TEST_ADMIN_PASSWORD).await;
        let mut admin = server.client_with(first["access_token"].as_str()).await;
        let (key_id, _) = create_key(&mut admin, "audited", &["logs:read"]).await;
        assert_eq!(
            send(&mut admin, "DELETE", &format!("/v1/keys/{key_id}"), None)
                .await
                .status,
            200
        );
        let user_id = create_user(&mut admin, None, "dev", "developer").await;
        let changed = send(
            &mut admin,
            "PATCH",
            &format!("/v1/users/{user_id}"),
            Some(json!({"role": "auditor"})),
        )
        .await;
        assert_eq!(changed.json().unwrap()["role"], "auditor");
        let me = admin.get("/v1/auth/me").await.unwrap().json().unwrap();
        let own_id = me["id"].as_str().unwrap();
        let own = send(
            &mut admin,
            "PATCH",
            &format!("/v1/users/{own_id}"),
            Some(json!({"role": "developer"})),
        )
        .await;
        assert_eq!(
            (own.status, code(&own).as_str()),
            (403, "forbidden"),
            "{engine}: an admin cannot demote itself"
        );

        // Self-registration is off until an admin turns it on.
        let registration =
            json!({"tenant": "default", "username": "newcomer", "password": USER_PASSWORD});
        let refused = send(
            &mut anonymous,
            "POST",
            "/v1/auth/register",
            Some(registration.clone()),
        )
        .await;
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (403, "registration_disabled")
        );
        let settings = send(
            &mut admin,
            "PUT",
            "/v1/settings",
            Some(json!({"self_registration": true})),
        )
        .await;
        assert_eq!(settings.json().unwrap()["self_registration"], true);
        let registered = send(
            &mut anonymous,
            "POST",
            "/v1/auth/register",
            Some(registration),
        )
        .await;
        assert_eq!(registered.status, 201, "{engine}: {:?}", registered.json());
        assert_eq!(registered.json().unwrap()["role"], "developer");
        let weak = send(
            &mut anonymous,
            "POST",
            "/v1/auth/register",
            Some(json!({"tenant": "default", "username": "weak", "password": "short"})),
        )
        .await;
        assert_eq!((weak.status, code(&weak).as_str()), (422, "invalid_field"));

        for (action, outcome) in [
            ("auth.login", "failure"),
            ("auth.login", "success"),
            ("key.create", "success"),
            ("key.revoke", "success"),
            ("user.create", "success"),
            ("user.role_change", "success"),
            ("settings.change", "success"),
            ("tenant.create", "success"),
        ] {
            let events =
                audit_events(&mut admin, &format!("action:{action} outcome:{outcome}"), 1).await;
            let event = &events[0];
            assert_eq!(event["stream"], "audit", "{engine}");
            assert_eq!(event["tenant"], "default");
            assert!(
                event["attributes"]["actor"]["type"].is_string(),
                "{engine}: {event}"
            );
        }
        // Clients cannot rewrite the trail: no chosen ids, no posing as Logbook.
        let mut audit_writer = server.client().await;
        let forged = audit_writer
            .post(
                "/v1/audit",
                "application/json",
                r#"{"id":"01ANY","action":"user.enable","userId":"u1"}"#,
            )
            .await
            .unwrap();
        assert_eq!(forged.status, 400, "{engine}");
        assert_eq!(forged.json().unwrap()["errors"][0]["code"], "invalid_id");
        let posing = audit_writer
            .post(
                "/v1/audit",
                "application/json",
                r#"{"service":"logbook","action":"user.enable","userId":"u1"}"#,
            )
            .await
            .unwrap();
        assert_eq!(
            posing.json().unwrap()["errors"][0]["code"],
            "reserved_service",
            "{engine}"
        );

        // A tenant admin who is not the super-admin cannot lock the super-admin out.
        create_user(&mut admin, None, "dana", "admin").await;
        let dana = token_of(&server, "dana", USER_PASSWORD).await;
        let mut dana = server.client_with(Some(&dana)).await;
        let lockout = send(
            &mut dana,
            "PATCH",
            &format!("/v1/users/{own_id}"),
            Some(json!({"disabled": true})),
        )
        .await;
        assert_eq!(
            (lockout.status, code(&lockout).as_str()),
            (403, "forbidden"),
            "{engine}"
        );
        let demoted = send(
            &mut dana,
            "PATCH",
            &format!("/v1/users/{user_id}"),
            Some(json!({"role": "developer"})),
        )
        .await;
        assert_eq!(demoted.status, 200, "{engine}: other users stay manageable");

        // The audit trail is not part of the logs, and developers cannot read it.
        let logs = admin
            .get("/v1/logs?q=action:auth.login")
            .await
            .unwrap()
            .json()
            .unwrap();
        assert!(logs["events"].as_array().unwrap().is_empty(), "{engine}");
        let developer = token_of(&server, "newcomer", USER_PASSWORD).await;
        let mut developer = server.client_with(Some(&developer)).await;
        assert_eq!(developer.get("/v1/audit").await.unwrap().status, 403);
        assert_eq!(developer.get("/v1/logs").await.unwrap().status, 200);

        // Changing the password keeps this session and ends the other one.
        let changed = send(
            &mut admin,
            "POST",
            "/v1/auth/password",
            Some(json!({"current_password": TEST_ADMIN_PASSWORD, "new_password": "a-brand-new-password"})),
        )
        .await;
        assert_eq!(changed.status, 204, "{engine}: {:?}", changed.json());
        assert_eq!(admin.get("/v1/users").await.unwrap().status, 200);
        let mut other = server.client_with(second["access_token"].as_str()).await;
        assert_eq!(
            code(&other.get("/v1/users").await.unwrap()),
            "session_revoked"
        );
        login(&server, "admin", "a-brand-new-password").await;
        server.stop().await;
    }
}
