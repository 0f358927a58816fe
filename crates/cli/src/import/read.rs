//! The reading side of one input, on a thread of its own: opens it, cuts it
//! into batches and hands them over a small channel, a couple ahead of the
//! connection that sends them.

use std::path::PathBuf;

use indicatif::ProgressBar;
use tokio::sync::mpsc;

use super::batch::{Batch, Batcher};
use super::input;
use super::split::{Format, Splitter};

/// What the reading thread hands to the sending loop.
pub enum Read {
    /// The input is open; whether it is one JSON array.
    Opened {
        array: bool,
    },
    Batch(Batch),
    /// Reading stopped here; the batches before were all handed over.
    Failed(anyhow::Error),
}

/// The reading side of one input, run on a thread of its own.
pub struct Reader {
    /// `None`: standard input.
    pub path: Option<PathBuf>,
    /// Whether `path` is a regular file (it can seek), not a pipe.
    pub regular: bool,
    pub format: Format,
    /// Where a resumed file starts: bytes of its content, newlines before
    /// them, and whether they are inside a JSON array.
    pub offset: u64,
    pub line: u64,
    pub array: bool,
    pub batch_size: usize,
    pub batch_bytes: usize,
    pub progress: ProgressBar,
}

impl Reader {
    /// Reads to the end, handing over batches; stops early when the sending
    /// side is gone.
    pub fn run(self, reads: &mpsc::Sender<Read>) {
        if let Err(error) = self.read(reads) {
            let _ = reads.blocking_send(Read::Failed(error));
        }
    }

    fn read(self, reads: &mpsc::Sender<Read>) -> anyhow::Result<()> {
        // One byte for the newline that ends each event in a body.
        let max_event_bytes = self.batch_bytes - 1;
        let mut splitter = match &self.path {
            None => Splitter::from_start(
                input::open_stream(std::io::stdin(), &self.progress)?,
                self.format,
                max_event_bytes,
            )?,
            Some(path) if !self.regular => Splitter::from_start(
                input::open_stream(std::fs::File::open(path)?, &self.progress)?,
                self.format,
                max_event_bytes,
            )?,
            Some(path) if self.offset == 0 => Splitter::from_start(
                input::open_file(path, 0, &self.progress)?,
                self.format,
                max_event_bytes,
            )?,
            Some(path) => Splitter::resumed(
                input::open_file(path, self.offset, &self.progress)?,
                self.format,
                max_event_bytes,
                self.offset,
                self.line,
                self.array,
            ),
        };
        let opened = Read::Opened {
            array: splitter.is_array(),
        };
        if reads.blocking_send(opened).is_err() {
            return Ok(());
        }
        let mut batcher = Batcher::new(self.batch_size, self.batch_bytes);
        while let Some(item) = splitter.next()? {
            if let Some(batch) = batcher.push(item, splitter.position(), splitter.line())
                && reads.blocking_send(Read::Batch(batch)).is_err()
            {
                return Ok(());
            }
        }
        if let Some(batch) = batcher.finish() {
            let _ = reads.blocking_send(Read::Batch(batch));
        }
        Ok(())
    }
}
