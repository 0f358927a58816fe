//! The conformance suite of the dead-letter seam, written once and run
//! against every backend: the embedded directory always, PostgreSQL when
//! `LOGBOOK_TEST_POSTGRES_URL` is set (in a fresh schema per test).
#![allow(clippy::unwrap_used)]

use model::{Stream, Timestamp};
use store::dead_letters::{DirectoryDeadLetters, MAX_PAGE};
use store::{DeadLetter, DeadLetterInfo, DeadLetters};

fn letter(id: &str, tenant: Option<&str>, payload: &[u8]) -> DeadLetter {
    DeadLetter {
        info: DeadLetterInfo {
            id: id.to_owned(),
            tenant: tenant.map(str::to_owned),
            stream: tenant.map(|_| Stream::Audit),
            position: 4_096,
            error: "the store refused the data: value too long".to_owned(),
            attempts: 5,
            first_failed_at: Timestamp::from_nanos(1_771_416_000_123_456_789),
            last_failed_at: Timestamp::from_nanos(1_771_416_001_000_000_000),
            payload_bytes: payload.len() as u64,
        },
        payload: payload.to_vec(),
    }
}

fn ids(letters: &[DeadLetterInfo]) -> Vec<&str> {
    letters.iter().map(|info| info.id.as_str()).collect()
}

/// What every backend must do.
async fn conformance(letters: &dyn DeadLetters) {
    let page = letters.list(None, 10).await.unwrap();
    assert!(page.letters.is_empty() && page.next.is_none());

    // Put in any order, listed in id order, without payloads.
    let binary = [0u8, 159, 146, 150, b'\n', 255, b'\r'];
    for letter in [
        letter(
            "00000000000000000300",
            Some("acme"),
            b"{\"v\":1}\n{\"x\":3}\n",
        ),
        letter("00000000000000000100", None, &binary),
        letter("00000000000000000200", Some("globex"), b"{\"v\":1}\n{}\n"),
    ] {
        letters.put(letter).await.unwrap();
    }
    let page = letters.list(None, 10).await.unwrap();
    assert_eq!(
        ids(&page.letters),
        [
            "00000000000000000100",
            "00000000000000000200",
            "00000000000000000300"
        ]
    );
    assert_eq!(page.next, None);
    assert_eq!(
        page.letters[0],
        letter("00000000000000000100", None, &binary).info
    );

    // Every field and the payload, byte for byte, come back.
    let got = letters.get("00000000000000000100").await.unwrap().unwrap();
    assert_eq!(got, letter("00000000000000000100", None, &binary));
    let got = letters.get("00000000000000000300").await.unwrap().unwrap();
    assert_eq!(got.info.tenant.as_deref(), Some("acme"));
    assert_eq!(got.info.stream, Some(Stream::Audit));
    assert_eq!(got.payload, b"{\"v\":1}\n{\"x\":3}\n");

    // The same id again replaces its letter.
    let mut again = letter(
        "00000000000000000200",
        Some("globex"),
        b"{\"v\":1}\n{\"y\":2}\n",
    );
    again.info.attempts = 7;
    again.info.error = "still refused".to_owned();
    letters.put(again.clone()).await.unwrap();
    assert_eq!(
        letters.get("00000000000000000200").await.unwrap().unwrap(),
        again
    );
    assert_eq!(letters.list(None, 10).await.unwrap().letters.len(), 3);

    // Pages of two, then the rest; a limit of 0 still returns one.
    let first = letters.list(None, 2).await.unwrap();
    assert_eq!(
        ids(&first.letters),
        ["00000000000000000100", "00000000000000000200"]
    );
    let next = first.next.as_deref().unwrap();
    let second = letters.list(Some(next), 2).await.unwrap();
    assert_eq!(ids(&second.letters), ["00000000000000000300"]);
    assert_eq!(second.next, None);
    assert_eq!(letters.list(None, 0).await.unwrap().letters.len(), 1);
    assert_eq!(
        letters
            .list(None, MAX_PAGE + 5)
            .await
            .unwrap()
            .letters
            .len(),
        3
    );

    // Unknown and impossible ids name nothing.
    for id in ["00000000000000000999", "../etc/passwd", "", "a.b"] {
        assert!(letters.get(id).await.unwrap().is_none(), "{id:?}");
        assert!(!letters.remove(id).await.unwrap(), "{id:?}");
    }
    assert!(letters.put(letter("../escape", None, b"x")).await.is_err());

    // Removed once, then gone.
    assert!(letters.remove("00000000000000000200").await.unwrap());
    assert!(!letters.remove("00000000000000000200").await.unwrap());
    assert!(letters.get("00000000000000000200").await.unwrap().is_none());
    assert_eq!(
        ids(&letters.list(None, 10).await.unwrap().letters),
        ["00000000000000000100", "00000000000000000300"]
    );
}

/// Letters outlive the process that wrote them.
async fn survives_reopening(first: &dyn DeadLetters, reopened: &dyn DeadLetters) {
    first
        .put(letter(
            "00000000000000000042",
            Some("acme"),
            b"{\"v\":1}\n{}\n",
        ))
        .await
        .unwrap();
    let got = reopened.get("00000000000000000042").await.unwrap().unwrap();
    assert_eq!(
        got,
        letter("00000000000000000042", Some("acme"), b"{\"v\":1}\n{}\n")
    );
}

#[tokio::test]
async fn directory_conformance() {
    let dir = tempfile::tempdir().unwrap();
    conformance(&DirectoryDeadLetters::new(dir.path().join("dead-letter"))).await;
    let other = tempfile::tempdir().unwrap();
    survives_reopening(
        &DirectoryDeadLetters::new(other.path()),
        &DirectoryDeadLetters::new(other.path()),
    )
    .await;
}

#[tokio::test]
async fn the_directory_reads_the_records_earlier_versions_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("00000000000000001234.record"),
        b"not a record",
    )
    .unwrap();
    // What an interrupted put leaves is not a letter.
    std::fs::write(dir.path().join("00000000000000000001.letter.tmp"), b"half").unwrap();
    let letters = DirectoryDeadLetters::new(dir.path());
    let page = letters.list(None, 10).await.unwrap();
    assert_eq!(ids(&page.letters), ["00000000000000001234"]);
    let info = &page.letters[0];
    assert_eq!(info.error, "unreadable record");
    assert_eq!((info.position, info.attempts), (1234, 1));
    assert_eq!((info.tenant.as_ref(), info.stream), (None, None));
    assert_eq!(info.payload_bytes, 12);
    let got = letters.get("00000000000000001234").await.unwrap().unwrap();
    assert_eq!(got.payload, b"not a record");
    assert!(letters.remove("00000000000000001234").await.unwrap());
    assert!(letters.list(None, 10).await.unwrap().letters.is_empty());
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use store::dead_letters::PostgresDeadLetters;

    /// A fresh schema, and a function to drop it when the test is done.
    async fn schema(test: &str) -> Option<(String, impl AsyncFnOnce())> {
        let url = meta::testing::postgres_url(test)?;
        let scoped = meta::testing::fresh_postgres_schema(&url).await.unwrap();
        let name = scoped
            .rsplit_once("search_path%3D")
            .map(|(_, name)| name.to_owned())
            .unwrap();
        let drop = async move || {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE"
            )))
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        };
        Some((scoped, drop))
    }

    #[tokio::test]
    async fn postgres_conformance() {
        let Some((url, drop_schema)) = schema("postgres_conformance").await else {
            return;
        };
        conformance(&PostgresDeadLetters::connect(&url).await.unwrap()).await;
        drop_schema().await;
    }

    #[tokio::test]
    async fn postgres_letters_survive_reconnecting() {
        let Some((url, drop_schema)) = schema("postgres_letters_survive_reconnecting").await else {
            return;
        };
        let first = PostgresDeadLetters::connect(&url).await.unwrap();
        let reopened = PostgresDeadLetters::connect(&url).await.unwrap();
        survives_reopening(&first, &reopened).await;
        drop_schema().await;
    }
}
