//! Syslog from a real client: util-linux `logger` sends RFC 5424 with
//! structured data over TCP (octet counting) and RFC 3164 over UDP to
//! `logbook serve --syslog-tcp … --syslog-udp …`; the stored events are
//! checked field by field.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{connect_when_up, logbook};
use serde_json::{Value, json};

const KEY: &str = "lbk_syslog-cli-test-key-0123456789abcdefgh";

/// Kills the server when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The addresses `logbook serve` prints once it listens (`http`, `udp`,
/// `tcp`); the rest of its output is read and dropped, so it never writes
/// into a closed pipe.
fn announced(stdout: std::process::ChildStdout) -> HashMap<String, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut addresses = HashMap::new();
        let mut sender = Some(sender);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("logbook listening on ") {
                addresses.insert("http".to_owned(), url.to_owned());
            } else if let Some(url) = line.strip_prefix("syslog listening on ") {
                let (scheme, rest) = url.split_once("://").unwrap();
                addresses.insert(scheme.to_owned(), rest.to_owned());
            }
            if addresses.len() == 3
                && let Some(sender) = sender.take()
            {
                let _ = sender.send(addresses.clone());
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("logbook serve printed its three addresses")
}

fn run_logger(args: &[&str]) {
    // RFC 3164 times are local times: the server reads them in UTC.
    let status = Command::new("logger")
        .args(args)
        .env("TZ", "UTC")
        .status()
        .unwrap();
    assert!(status.success(), "logger {args:?}: {status}");
}

/// An event's time field, as the model orders times.
fn time_of(event: &Value, field: &str) -> model::Timestamp {
    model::Timestamp::parse(event[field].as_str().unwrap()).unwrap()
}

/// Now, cut to whole `unit`s of nanoseconds (what a client's clock shows).
fn now_in(unit: i64) -> model::Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let nanos = i64::try_from(since.as_nanos()).unwrap();
    model::Timestamp::from_epoch(nanos / unit * unit).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logger_over_tcp_and_udp_is_stored_field_by_field() {
    if Command::new("logger").arg("--version").output().is_err() {
        println!("SKIPPED: logger not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let mut server = logbook()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--syslog-tcp", "127.0.0.1:0", "--syslog-udp", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .env("LOGBOOK_BOOTSTRAP_KEY", KEY)
        .env("LOGBOOK_COMMIT_INTERVAL_MS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let _server = Killed(server);
    let addresses = announced(stdout);
    let mut client = connect_when_up(&addresses["http"], KEY).await;
    let tcp_port = addresses["tcp"].rsplit_once(':').unwrap().1.to_owned();
    let udp_port = addresses["udp"].rsplit_once(':').unwrap().1.to_owned();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok();

    // What the client's clock shows at the earliest, at its precision.
    let (before_micros, before_seconds) = (now_in(1_000), now_in(1_000_000_000));
    let remote = ["-n", "127.0.0.1", "-P"];
    run_logger(
        &[
            &remote[..],
            &[&tcp_port, "-T", "--rfc5424", "--octet-count"],
            &[
                "-p",
                "local4.err",
                "-t",
                "checkout",
                "--id=4242",
                "--msgid",
                "PAY1",
            ],
            &["--sd-id", "order@32473", "--sd-param", "id=\"42\""],
            &["--sd-param", "amount=\"9.50\"", "card declined"],
        ]
        .concat(),
    );
    run_logger(
        &[
            &remote[..],
            &[&udp_port, "-d", "--rfc3164"],
            &["-p", "daemon.warning", "-t", "db", "disk almost full"],
        ]
        .concat(),
    );
    let after = now_in(1);

    let deadline = Instant::now() + Duration::from_secs(30);
    let events: HashMap<String, Value> = loop {
        let page = client
            .get("/v1/logs?limit=100")
            .await
            .unwrap()
            .json()
            .unwrap();
        let events = page["events"].as_array().unwrap();
        if events.len() >= 2 {
            assert_eq!(events.len(), 2, "{page}");
            break events
                .iter()
                .map(|event| (event["message"].as_str().unwrap().to_owned(), event.clone()))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} events: {page}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let tcp = &events["card declined"];
    assert_eq!(tcp["tenant"], "default");
    assert_eq!(tcp["level"], "error");
    assert_eq!(tcp["service"], "checkout");
    assert_eq!(tcp["source_ip"], "127.0.0.1");
    if let Some(hostname) = &hostname {
        assert_eq!(tcp["host"], hostname.as_str());
    }
    // logger writes microseconds.
    let sent = time_of(tcp, "timestamp");
    assert!(before_micros <= sent && sent <= after, "{sent}");
    assert_eq!(
        tcp["attributes"]["syslog"],
        json!({"facility": "local4", "severity": "err", "procid": "4242", "msgid": "PAY1", "protocol": "rfc5424"})
    );
    // logger adds its own time-quality element (whether the clock is
    // synchronised depends on the machine).
    let elements = tcp["attributes"]["structured_data"].as_object().unwrap();
    assert_eq!(elements.len(), 2, "{elements:?}");
    assert_eq!(
        elements["order@32473"],
        json!({"id": "42", "amount": "9.50"})
    );
    assert_eq!(elements["timeQuality"]["tzKnown"], "1");

    let udp = &events["disk almost full"];
    assert_eq!(udp["tenant"], "default");
    assert_eq!(udp["level"], "warn");
    assert_eq!(udp["service"], "db");
    assert_eq!(udp["source_ip"], "127.0.0.1");
    if let Some(hostname) = &hostname {
        assert_eq!(udp["host"], hostname.as_str());
    }
    // RFC 3164: whole seconds, read in UTC (the default zone), this year.
    let sent = time_of(udp, "timestamp");
    assert!(!udp["timestamp"].as_str().unwrap().contains('.'));
    assert!(before_seconds <= sent && sent <= after, "{sent}");
    assert_eq!(
        udp["attributes"]["syslog"],
        json!({"facility": "daemon", "severity": "warning", "protocol": "rfc3164"})
    );
    assert_eq!(udp["attributes"].get("structured_data"), None);
}
