//! Opens what `logbook import` reads — a file or standard input — gunzipped
//! when it starts with gzip's magic bytes, counting the raw bytes read on the
//! progress bar, and positioned at the offset an import resumes from.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek as _, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use indicatif::ProgressBar;

/// The first two bytes of every gzip member (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Read buffer size: large reads keep the decoder and the syscalls cheap.
const BUFFER: usize = 256 << 10;

/// A stream of the input's (decompressed) bytes.
pub type Input = Box<dyn BufRead + Send>;

/// Opens `path` at `offset` bytes of its decompressed content: a plain file
/// seeks there, a gzip file is decompressed up to it.
pub fn open_file(path: &Path, offset: u64, progress: &ProgressBar) -> std::io::Result<Input> {
    let mut file = File::open(path)?;
    let head = read_head(&mut file)?;
    if head != GZIP_MAGIC {
        file.seek(SeekFrom::Start(offset))?;
        progress.inc(offset);
        return Ok(Box::new(BufReader::with_capacity(
            BUFFER,
            Counted::new(file, progress),
        )));
    }
    file.seek(SeekFrom::Start(0))?;
    gunzip(Counted::new(file, progress), offset)
}

/// Opens a stream — standard input, a pipe — from its start (it cannot be
/// read again, so it cannot resume).
pub fn open_stream(
    raw: impl Read + Send + 'static,
    progress: &ProgressBar,
) -> std::io::Result<Input> {
    let mut raw = Counted::new(raw, progress);
    let head = read_head(&mut raw)?;
    let gzip = head == GZIP_MAGIC;
    // The bytes looked at go back in front of the rest.
    let stream = Cursor::new(head).chain(raw);
    if gzip {
        gunzip(stream, 0)
    } else {
        Ok(Box::new(BufReader::with_capacity(BUFFER, stream)))
    }
}

/// Decompresses every gzip member of `raw` one after the other (as `zcat`
/// does with concatenated files), skipping the first `offset` bytes.
fn gunzip(raw: impl Read + Send + 'static, offset: u64) -> std::io::Result<Input> {
    let mut stream = BufReader::with_capacity(BUFFER, MultiGzDecoder::new(raw));
    let skipped = std::io::copy(&mut (&mut stream).take(offset), &mut std::io::sink())?;
    if skipped < offset {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the decompressed input ends at byte {skipped}, before the recorded offset {offset}"
            ),
        ));
    }
    Ok(Box::new(stream))
}

/// Up to the first two bytes (fewer only at the end of the input).
fn read_head(reader: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(2);
    reader.take(2).read_to_end(&mut head)?;
    Ok(head)
}

/// Counts the bytes read from the raw input on the progress bar.
struct Counted<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R> Counted<R> {
    fn new(inner: R, progress: &ProgressBar) -> Counted<R> {
        Counted {
            inner,
            progress: progress.clone(),
        }
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.progress.inc(read as u64);
        Ok(read)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn read_all(mut input: Input) -> String {
        let mut text = String::new();
        input.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn plain_and_gzip_files_open_at_an_offset_and_count_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("app.log");
        std::fs::write(&plain, "line one\nline two\n").unwrap();
        let progress = ProgressBar::hidden();
        assert_eq!(
            read_all(open_file(&plain, 0, &progress).unwrap()),
            "line one\nline two\n"
        );
        assert_eq!(progress.position(), 18);
        assert_eq!(
            read_all(open_file(&plain, 9, &ProgressBar::hidden()).unwrap()),
            "line two\n"
        );

        // Two members, as `cat a.gz b.gz` makes.
        let packed = dir.path().join("app.log.gz");
        let mut bytes = gzip(b"line one\n");
        bytes.extend(gzip(b"line two\n"));
        std::fs::write(&packed, &bytes).unwrap();
        let progress = ProgressBar::hidden();
        assert_eq!(
            read_all(open_file(&packed, 0, &progress).unwrap()),
            "line one\nline two\n"
        );
        assert_eq!(progress.position(), bytes.len() as u64);
        assert_eq!(
            read_all(open_file(&packed, 14, &ProgressBar::hidden()).unwrap()),
            "two\n"
        );
        assert!(open_file(&packed, 19, &ProgressBar::hidden()).is_err());
    }

    #[test]
    fn streams_are_gunzipped_when_they_start_like_gzip() {
        let text = "line one\nline two\n";
        let packed = gzip(text.as_bytes());
        let progress = ProgressBar::hidden();
        let input = open_stream(std::io::Cursor::new(packed.clone()), &progress).unwrap();
        assert_eq!(read_all(input), text);
        assert_eq!(progress.position(), packed.len() as u64);
        let input = open_stream(std::io::Cursor::new(text), &ProgressBar::hidden()).unwrap();
        assert_eq!(read_all(input), text);
    }

    #[test]
    fn short_inputs_are_not_mistaken_for_gzip() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["", "x", "\u{1f}"] {
            let path = dir.path().join("short");
            std::fs::write(&path, content).unwrap();
            assert_eq!(
                read_all(open_file(&path, 0, &ProgressBar::hidden()).unwrap()),
                content
            );
        }
    }
}
