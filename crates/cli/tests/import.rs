//! `logbook import` against a running `logbook serve`: Loghub samples (or
//! generated lines where the samples are not beside the repository) sent as
//! text lines, NDJSON, a gzip-compressed JSON array and gzip on standard
//! input arrive exactly once; refused lines are named by file and line; and
//! an import stopped part-way by a failing server resumes without sending
//! anything twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bench::client::{HttpClient, percent_encode};
use common::{connect_when_up, free_port, logbook, serve_with_settings};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};

const KEY: &str = "lbk_import-cli-test-key-0123456789abcdefghij";

/// Kills the server when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server on a free port with a temporary data directory, and a client.
async fn server(root: &Path) -> (Killed, String, HttpClient) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = Killed(serve_with_settings(root, port, KEY, "", Stdio::inherit()));
    let client = connect_when_up(&url, KEY).await;
    (server, url, client)
}

/// The non-blank lines of a Loghub sample without their CRLF, or `count`
/// generated lines when the samples are not beside the repository.
fn sample(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/loghub")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        Err(_) => {
            eprintln!(
                "the Loghub sample {name} is not beside the repository: generated lines instead"
            );
            (0..2000)
                .map(|n| format!("[{name}] generated line {n}: \"quoted\" \\ and tab\there"))
                .collect()
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Runs `logbook import ARGS` in `dir` against `url`, with `stdin` as its input.
fn import(dir: &Path, url: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = logbook()
        .arg("import")
        .args(args)
        .current_dir(dir)
        .env("LOGBOOK_URL", url)
        .env("LOGBOOK_KEY", KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    eprintln!(
        "logbook import {args:?}: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits until everything acknowledged before is searchable: the embedded
/// worker commits the queue in order, so a marker found means all before it.
async fn settle(client: &mut HttpClient) {
    let answer = client
        .post(
            "/v1/logs?wait=searchable",
            "application/json",
            json!({"service": "marker", "message": "settled"}).to_string(),
        )
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer["searchable"], true, "{answer}");
}

/// Every stored message of `service`, sorted.
async fn messages(client: &mut HttpClient, service: &str) -> Vec<String> {
    let q = percent_encode(&format!("service:{service}"));
    let mut messages: Vec<String> = common::all_logs(client, &q)
        .await
        .iter()
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    messages
}

fn sorted(lines: &[String]) -> Vec<String> {
    let mut lines = lines.to_vec();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_arrives_exactly_once_and_refusals_name_their_line() {
    let root = tempfile::tempdir().unwrap();
    let (_server, url, mut client) = server(root.path()).await;
    let dir = tempfile::tempdir().unwrap();

    // Text lines as Loghub ships them: CRLF, no newline at the end.
    let apache = sample("Apache/Apache_2k.log");
    std::fs::write(dir.path().join("apache.log"), apache.join("\r\n")).unwrap();
    let output = import(
        dir.path(),
        &url,
        &[
            "--format",
            "lines",
            "--service",
            "apache",
            "--batch-size",
            "300",
            "apache.log",
        ],
        b"",
    );
    assert!(output.status.success());
    assert!(stdout(&output).starts_with(&format!("{} accepted, 0 rejected", apache.len())));

    // NDJSON with a blank line, and a pretty-printed JSON array, gzip-compressed.
    let openssh = sample("OpenSSH/OpenSSH_2k.log");
    let mut ndjson = String::new();
    for (n, line) in openssh.iter().enumerate() {
        ndjson.push_str(
            &json!({"service": "openssh", "message": line, "metadata": {"n": n}}).to_string(),
        );
        ndjson.push_str(if n == 10 { "\n\n" } else { "\n" });
    }
    std::fs::write(dir.path().join("openssh.ndjson"), ndjson).unwrap();
    let hdfs = sample("HDFS/HDFS_2k.log");
    let events: Vec<Value> = hdfs
        .iter()
        .map(|line| json!({"service": "hdfs", "level": "info", "message": line}))
        .collect();
    let array = serde_json::to_vec_pretty(&events).unwrap();
    std::fs::write(dir.path().join("hdfs.json.gz"), gzip(&array)).unwrap();
    let output = import(dir.path(), &url, &["openssh.ndjson", "hdfs.json.gz"], b"");
    assert!(output.status.success());
    let accepted = openssh.len() + hdfs.len();
    assert!(
        stdout(&output).starts_with(&format!("{accepted} accepted, 0 rejected, from 2 inputs"))
    );

    // Gzip on standard input.
    let linux = sample("Linux/Linux_2k.log");
    let text = format!("{}\n", linux.join("\n"));
    let output = import(
        dir.path(),
        &url,
        &["--format", "lines", "--service", "linux", "-"],
        &gzip(text.as_bytes()),
    );
    assert!(output.status.success());
    assert!(stdout(&output).starts_with(&format!("{} accepted, 0 rejected", linux.len())));

    // Refused lines: by the server (malformed, unknown level) and by the client (not UTF-8).
    let mut bad = Vec::new();
    bad.extend(b"{\"service\":\"bad\",\"message\":\"one\"}\n");
    bad.extend(b"{\"service\":\"bad\",\"message\":\n");
    bad.extend(b"{\"service\":\"bad\",\"message\":\"three\"}\n\n");
    bad.extend(b"{\"service\":\"bad\",\"level\":\"loud\",\"message\":\"five\"}\n");
    bad.extend(b"{\"service\":\"bad\",\"message\":\"\xff\"}\n");
    bad.extend(b"{\"service\":\"bad\",\"message\":\"seven\"}\n");
    std::fs::write(dir.path().join("bad.ndjson"), bad).unwrap();
    let output = import(dir.path(), &url, &["bad.ndjson"], b"");
    assert_eq!(output.status.code(), Some(3));
    let summary = stdout(&output);
    assert!(summary.starts_with("3 accepted, 3 rejected"), "{summary}");
    let errors: Vec<&str> = summary
        .lines()
        .skip_while(|line| *line != "first errors:")
        .skip(1)
        .collect();
    assert_eq!(errors.len(), 3, "{summary}");
    assert!(
        errors[0].starts_with("  bad.ndjson:2: malformed_json: malformed JSON at column"),
        "{summary}"
    );
    assert!(
        errors[1].starts_with("  bad.ndjson:5: invalid_level: "),
        "{summary}"
    );
    assert!(
        errors[2].starts_with("  bad.ndjson:6: invalid_utf8: "),
        "{summary}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("3 events were rejected"));

    settle(&mut client).await;
    assert_eq!(messages(&mut client, "apache").await, sorted(&apache));
    assert_eq!(messages(&mut client, "openssh").await, sorted(&openssh));
    assert_eq!(messages(&mut client, "hdfs").await, sorted(&hdfs));
    assert_eq!(messages(&mut client, "linux").await, sorted(&linux));
    assert_eq!(
        messages(&mut client, "bad").await,
        ["one", "seven", "three"]
    );
    // Files (not standard input) have their progress recorded beside the run.
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("logbook-import.state")).unwrap())
            .unwrap();
    assert_eq!(state["files"].as_object().unwrap().len(), 4, "{state}");
}

/// An HTTP front for the server that forwards `forward` more requests and
/// answers `500` after them, and when `busy` answers every other request
/// `503` with `Retry-After: 0` first.
struct Front {
    url: String,
    forward: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
    busy_answers: Arc<AtomicUsize>,
}

impl Front {
    async fn start(upstream: &str) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = Front {
            url: format!("http://{}", listener.local_addr().unwrap()),
            forward: Arc::new(AtomicUsize::new(usize::MAX)),
            busy: Arc::default(),
            busy_answers: Arc::default(),
        };
        let (forward, busy, busy_answers) = (
            Arc::clone(&front.forward),
            Arc::clone(&front.busy),
            Arc::clone(&front.busy_answers),
        );
        let upstream = upstream.to_owned();
        tokio::spawn(async move {
            let requests = Arc::new(AtomicUsize::new(0));
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let upstream = HttpClient::connect(&upstream)
                    .await
                    .unwrap()
                    .with_token(Some(KEY))
                    .unwrap();
                let shared = (
                    Arc::clone(&forward),
                    Arc::clone(&busy),
                    Arc::clone(&busy_answers),
                    Arc::clone(&requests),
                );
                tokio::spawn(relay(socket, upstream, shared));
            }
        });
        front
    }
}

type Shared = (
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
);

/// Answers the requests of one connection (HTTP/1.1 with a Content-Length body).
async fn relay(socket: tokio::net::TcpStream, mut upstream: HttpClient, shared: Shared) {
    let (forward, busy, busy_answers, requests) = shared;
    let (reader, mut writer) = socket.into_split();
    let mut reader = BufReader::new(reader);
    loop {
        let (mut request_line, mut length, mut content_type) = (String::new(), 0, String::new());
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await.unwrap();
            if header == "\r\n" {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await.unwrap();
        let path = request_line.split(' ').nth(1).unwrap().to_owned();
        let number = requests.fetch_add(1, Ordering::SeqCst);
        let (status, extra, answer) = if busy.load(Ordering::SeqCst) && number % 2 == 0 {
            busy_answers.fetch_add(1, Ordering::SeqCst);
            let answer = json!({"status": 503, "code": "server_busy", "message": "injected"});
            (503, "retry-after: 0\r\n", answer.to_string().into_bytes())
        } else if forward
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_err()
        {
            let answer = json!({"status": 500, "code": "internal", "message": "injected failure"});
            (500, "", answer.to_string().into_bytes())
        } else {
            let response = upstream.post(&path, &content_type, body).await.unwrap();
            (response.status, "", response.body.to_vec())
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
            answer.len()
        );
        writer.write_all(head.as_bytes()).await.unwrap();
        writer.write_all(&answer).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_without_sending_anything_twice() {
    let root = tempfile::tempdir().unwrap();
    let (_server, url, mut client) = server(root.path()).await;
    let front = Front::start(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = sample("Zookeeper/Zookeeper_2k.log");
    std::fs::write(dir.path().join("zookeeper.log"), plain.join("\n")).unwrap();
    let packed = sample("Spark/Spark_2k.log");
    let text = format!("{}\n", packed.join("\n"));
    std::fs::write(dir.path().join("spark.log.gz"), gzip(text.as_bytes())).unwrap();
    let args = |service: &'static str, file: &'static str, resume: bool| {
        let mut args = vec![
            "--format",
            "lines",
            "--service",
            service,
            "--batch-size",
            "250",
        ];
        if resume {
            args.push("--resume");
        }
        args.push(file);
        args
    };

    // Three batches of the plain file arrive, then the server fails.
    front.forward.store(3, Ordering::SeqCst);
    let output = import(
        dir.path(),
        &front.url,
        &args("zookeeper", "zookeeper.log", false),
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("750 accepted, 0 rejected"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "cannot import zookeeper.log: the server answered 500 internal: injected failure"
        ),
        "{stderr}"
    );

    // The service is part of what was recorded: another one cannot resume.
    let output = import(
        dir.path(),
        &front.url,
        &args("other", "zookeeper.log", true),
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot resume zookeeper.log"));

    // Resumed: the rest of the plain file; then three batches of the gzip file.
    front.forward.store(5 + 3, Ordering::SeqCst);
    let output = import(
        dir.path(),
        &front.url,
        &args("zookeeper", "zookeeper.log", true),
        b"",
    );
    assert!(output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("zookeeper.log: resuming at line 751")
    );
    assert!(stdout(&output).starts_with(&format!("{} accepted", plain.len() - 750)));
    let output = import(
        dir.path(),
        &front.url,
        &args("spark", "spark.log.gz", false),
        b"",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("750 accepted, 0 rejected"));

    // Resumed through a busy server: the gzip file's rest, nothing of a complete file.
    front.forward.store(usize::MAX, Ordering::SeqCst);
    front.busy.store(true, Ordering::SeqCst);
    let output = import(
        dir.path(),
        &front.url,
        &args("spark", "spark.log.gz", true),
        b"",
    );
    assert!(output.status.success());
    assert!(stdout(&output).starts_with(&format!("{} accepted", packed.len() - 750)));
    assert!(front.busy_answers.load(Ordering::SeqCst) >= 2);
    let output = import(
        dir.path(),
        &front.url,
        &args("zookeeper", "zookeeper.log", true),
        b"",
    );
    assert!(output.status.success());
    assert!(stdout(&output).starts_with("0 accepted, 0 rejected"));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("imported completely before: skipped")
    );

    // Standard input cannot resume.
    let output = import(dir.path(), &front.url, &args("spark", "-", true), b"x\n");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("standard input cannot be resumed"));

    settle(&mut client).await;
    assert_eq!(messages(&mut client, "zookeeper").await, sorted(&plain));
    assert_eq!(messages(&mut client, "spark").await, sorted(&packed));
}
