//! How PostgreSQL's failures become [`StoreError`] kinds callers branch on: a
//! database that cannot be reached, or a lock race lost, is `Unavailable` (retry later), a statement
//! stopped at its deadline is `QueryTimeout`, anything else is `Engine`.

use std::time::Duration;

use crate::StoreError;

/// SQLSTATE of a statement cancelled by `statement_timeout` (or a cancel request).
const QUERY_CANCELED: &str = "57014";

/// Whether a database error means the server cannot serve now: connection
/// exceptions (class 08), shutdowns and restarts (57P01–57P03), too many
/// connections (53300), a server out of resources (53xxx), and a statement
/// that lost a lock race (a deadlock, 40P01, or a lock not granted in time,
/// 55P03, as when retention drops a day's partition): all worth a retry.
fn unavailable_code(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || matches!(code, "57P01" | "57P02" | "57P03" | "40P01" | "55P03")
}

/// Maps an error of a write or a lookup.
pub(crate) fn engine(context: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| classify(context, error, None)
}

/// Maps an error of a query that runs under `timeout`.
pub(crate) fn query(timeout: Duration) -> impl Fn(sqlx::Error) -> StoreError {
    move |error| classify("querying", error, Some(timeout))
}

fn classify(context: &'static str, error: sqlx::Error, timeout: Option<Duration>) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => {
            let code = database.code().unwrap_or_default();
            if code == QUERY_CANCELED
                && let Some(timeout) = timeout
            {
                return StoreError::QueryTimeout(timeout);
            }
            unavailable_code(&code)
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(format!("{context}: {error}"))
    } else {
        StoreError::Engine {
            context,
            source: Box::new(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable_and_others_engine_errors() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            engine("committing")(refused),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            engine("committing")(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            engine("committing")(sqlx::Error::RowNotFound),
            StoreError::Engine { .. }
        ));
        assert!(
            unavailable_code("08006")
                && unavailable_code("57P01")
                && unavailable_code("53300")
                && unavailable_code("40P01")
                && unavailable_code("55P03")
        );
        assert!(!unavailable_code("23505") && !unavailable_code("57014"));
    }
}
