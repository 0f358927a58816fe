//! The handle that ends the background sender: it flushes what is buffered,
//! within a timeout, and joins the thread.

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::stats::Stats;

/// Returned by [`crate::Builder::build`]. Dropping it (or calling
/// [`Guard::shutdown`]) stops accepting events, sends what is buffered for at
/// most the shutdown timeout, and waits for the background thread to end.
/// Events still unsent then are counted in [`Stats::failed`].
pub struct Guard {
    stop: Option<oneshot::Sender<Instant>>,
    thread: Option<JoinHandle<()>>,
    timeout: Duration,
    stats: Stats,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("running", &self.thread.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(crate) fn new(
        stop: oneshot::Sender<Instant>,
        thread: JoinHandle<()>,
        timeout: Duration,
        stats: Stats,
    ) -> Guard {
        Guard {
            stop: Some(stop),
            thread: Some(thread),
            timeout,
            stats,
        }
    }

    /// The delivery counters (they keep counting after this call).
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Flushes and stops now; returns the final counters.
    pub fn shutdown(mut self) -> Stats {
        self.stop_and_join();
        self.stats.clone()
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The sender may already be gone (every layer dropped): nothing to tell.
            let _ = stop.send(Instant::now() + self.timeout);
        }
        if let Some(thread) = self.thread.take() {
            // A panic of the sender has nothing left to flush; the application goes on.
            let _ = thread.join();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
