//! Tests of the embedded queue: round trips, group commit, recovery from torn tails and corruption, retention, back-pressure and waiting reads.
#![allow(clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tempfile::TempDir;

use crate::segment::HEADER_LEN;
use crate::{EmbeddedQueue, EmbeddedQueueConfig, Position, Queue, QueueError, Record};

/// Payloads are 11 bytes, so every frame is 19 bytes.
const FRAME: u64 = 19;
/// Fits two frames per segment.
const SMALL_SEGMENT: u64 = 50;

fn payload(i: usize) -> Bytes {
    Bytes::from(format!("record-{i:04}"))
}

fn open(dir: &Path) -> EmbeddedQueue {
    EmbeddedQueue::open(EmbeddedQueueConfig::new(dir)).unwrap()
}

fn open_small(dir: &Path) -> EmbeddedQueue {
    EmbeddedQueue::open(EmbeddedQueueConfig {
        segment_bytes: SMALL_SEGMENT,
        ..EmbeddedQueueConfig::new(dir)
    })
    .unwrap()
}

async fn append_n(
    queue: &EmbeddedQueue,
    range: std::ops::Range<usize>,
) -> Vec<(Position, Position)> {
    let mut positions = Vec::new();
    for i in range {
        positions.push(queue.append(payload(i)).await.unwrap());
    }
    positions
}

async fn read_all(queue: &EmbeddedQueue, from: Position) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        let batch = queue
            .read(pos, 1000, 1 << 20, Duration::ZERO)
            .await
            .unwrap();
        let Some(last) = batch.last() else {
            return out;
        };
        pos = last.next;
        out.extend(batch);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn assert_payloads(records: &[Record], expected: std::ops::Range<usize>) {
    let got: Vec<Bytes> = records.iter().map(|r| r.payload.clone()).collect();
    let want: Vec<Bytes> = expected.map(payload).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn append_then_read_back() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let positions = append_n(&queue, 0..3).await;
    assert_eq!(
        positions,
        vec![
            (Position(0), Position(FRAME)),
            (Position(FRAME), Position(2 * FRAME)),
            (Position(2 * FRAME), Position(3 * FRAME)),
        ]
    );

    let all = queue
        .read(Position(0), 10, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert_payloads(&all, 0..3);
    for (record, (start, next)) in all.iter().zip(&positions) {
        assert_eq!((record.position, record.next), (*start, *next));
    }

    let two = queue
        .read(Position(0), 2, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert_payloads(&two, 0..2);
    let one = queue
        .read(Position(0), 10, 1, Duration::ZERO)
        .await
        .unwrap();
    assert_payloads(&one, 0..1);
    let tail = queue
        .read(positions[1].0, 10, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert_payloads(&tail, 1..3);

    let empty = queue.append(Bytes::new()).await.unwrap();
    assert_eq!(
        empty,
        (Position(3 * FRAME), Position(3 * FRAME + HEADER_LEN))
    );
    let last = queue
        .read(empty.0, 10, 1 << 20, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert!(last[0].payload.is_empty());

    let stats = queue.stats();
    assert_eq!(stats.first, Position(0));
    assert_eq!(stats.durable_end, empty.1);
    assert_eq!(stats.pending_bytes, empty.1.0);
    assert_eq!(stats.segments, 1);
}

#[tokio::test]
async fn positions_across_segment_rollover() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let positions = append_n(&queue, 0..7).await;
    for (i, (start, next)) in positions.iter().enumerate() {
        assert_eq!(*start, Position(i as u64 * FRAME));
        assert_eq!(*next, Position((i as u64 + 1) * FRAME));
    }
    let names: Vec<String> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [0, 38, 76, 114].map(|s| format!("{s:020}.seg")).to_vec()
    );
    let records = read_all(&queue, Position(0)).await;
    assert_payloads(&records, 0..7);

    // A record larger than a segment gets a segment of its own, and the next record starts another.
    let big = queue.append(Bytes::from(vec![7u8; 100])).await.unwrap();
    assert_eq!(big, (Position(7 * FRAME), Position(7 * FRAME + 108)));
    let after = queue.append(payload(7)).await.unwrap();
    assert_eq!(after.0, big.1);
    assert_eq!(queue.stats().segments, 6);
    let records = read_all(&queue, Position(6 * FRAME)).await;
    assert_eq!(records.len(), 3);
    assert_eq!(records[1].payload.len(), 100);
    assert_eq!(records[2].payload, payload(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 50;
    let dir = TempDir::new().unwrap();
    let queue = Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let queue = Arc::clone(&queue);
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_TASK {
                let body = payload(t * PER_TASK + i);
                let (start, _) = queue.append(body.clone()).await.unwrap();
                acked.push((start, body));
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    acked.sort_by_key(|(start, _)| *start);

    let records = read_all(&queue, Position(0)).await;
    assert_eq!(records.len(), TASKS * PER_TASK);
    for (record, (start, body)) in records.iter().zip(&acked) {
        assert_eq!(record.position, *start);
        assert_eq!(&record.payload, body);
    }
    let syncs = queue.stats().syncs;
    println!("{} appends shared {syncs} fsyncs", TASKS * PER_TASK);
    assert!(
        syncs < (TASKS * PER_TASK) as u64,
        "no fsync was shared ({syncs})"
    );
}

#[tokio::test]
async fn reopen_after_close_continues_at_the_end() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let positions = append_n(&queue, 0..5).await;
    queue.close().await;
    assert!(matches!(
        queue.append(payload(9)).await,
        Err(QueueError::Closed)
    ));
    // Reads of durable data still work after close.
    assert_eq!(read_all(&queue, Position(0)).await.len(), 5);
    drop(queue);

    let queue = open_small(dir.path());
    let stats = queue.stats();
    assert_eq!(stats.first, Position(0));
    assert_eq!(stats.released, Position(0));
    assert_eq!(stats.durable_end, positions[4].1);
    assert_payloads(&read_all(&queue, Position(0)).await, 0..5);
    let (start, _) = queue.append(payload(5)).await.unwrap();
    assert_eq!(start, positions[4].1);
    assert_payloads(&read_all(&queue, Position(0)).await, 0..6);
}

#[test]
fn open_refuses_a_directory_in_use() {
    let dir = TempDir::new().unwrap();
    let _queue = open(dir.path());
    let second = EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path()));
    let Err(error) = second else {
        panic!("two queues opened one directory");
    };
    assert!(matches!(error, QueueError::Locked { .. }), "{error:?}");
    assert!(
        error.to_string().contains("another `logbook serve`"),
        "the message says who holds it: {error}"
    );
}

/// Writes five records to a single segment, closes, damages the segment with `damage`, reopens and checks that exactly `kept` records survive and appends continue after them.
async fn recovers_from(damage: impl FnOnce(&Path, &[(Position, Position)]), kept: usize) {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let positions = append_n(&queue, 0..5).await;
    queue.close().await;
    drop(queue);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    damage(&files[0], &positions);

    let queue = open(dir.path());
    let end = positions[kept - 1].1;
    assert_eq!(queue.stats().durable_end, end);
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), end.0);
    assert_payloads(&read_all(&queue, Position(0)).await, 0..kept);
    let (start, _) = queue.append(payload(kept)).await.unwrap();
    assert_eq!(start, end);
    assert_payloads(&read_all(&queue, Position(0)).await, 0..kept + 1);
}

#[tokio::test]
async fn torn_tail_is_truncated() {
    recovers_from(
        |path, positions| {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(positions[4].0.0 + HEADER_LEN + 3).unwrap();
        },
        4,
    )
    .await;
}

#[tokio::test]
async fn torn_header_is_truncated() {
    recovers_from(
        |path, positions| {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(positions[4].0.0 + 5).unwrap();
        },
        4,
    )
    .await;
}

#[tokio::test]
async fn trailing_garbage_is_truncated() {
    recovers_from(
        |path, positions| {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.write_all_at(b"\x07\x00\x00\x00garbage-garbage", positions[4].1.0)
                .unwrap();
        },
        5,
    )
    .await;
}

#[tokio::test]
async fn trailing_zeros_are_truncated() {
    recovers_from(
        |path, positions| {
            let file = OpenOptions::new().write(true).open(path).unwrap();
            file.set_len(positions[4].1.0 + 64).unwrap();
        },
        5,
    )
    .await;
}

#[tokio::test]
async fn flipped_byte_in_last_record_is_truncated() {
    recovers_from(
        |path, positions| {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .unwrap();
            let at = positions[4].0.0 + HEADER_LEN + 2;
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, at).unwrap();
            file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
        },
        4,
    )
    .await;
}

#[tokio::test]
async fn corruption_before_the_tail_is_an_error() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    append_n(&queue, 0..6).await;
    queue.close().await;
    drop(queue);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 3);

    let file = OpenOptions::new().write(true).open(&files[0]).unwrap();
    file.write_all_at(b"X", FRAME + HEADER_LEN).unwrap();
    drop(file);
    match EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path())) {
        Err(QueueError::Corrupt(message)) => {
            assert!(message.contains("00000000000000000000.seg"), "{message}");
            assert!(message.contains("offset 19"), "{message}");
        }
        other => panic!("expected Corrupt, got {:?}", other.map(|q| q.stats())),
    }
}

#[tokio::test]
async fn short_segment_before_the_tail_is_an_error() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    append_n(&queue, 0..6).await;
    queue.close().await;
    drop(queue);
    let files = segment_files(dir.path());
    let file = OpenOptions::new().write(true).open(&files[1]).unwrap();
    file.set_len(FRAME).unwrap();
    drop(file);
    let result = EmbeddedQueue::open(EmbeddedQueueConfig::new(dir.path()));
    assert!(
        matches!(result, Err(QueueError::Corrupt(_))),
        "{:?}",
        result.map(|q| q.stats())
    );
}

#[tokio::test]
async fn release_deletes_consumed_segments_but_not_the_active_one() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let positions = append_n(&queue, 0..7).await;
    assert_eq!(segment_files(dir.path()).len(), 4);

    // Position 3 * FRAME is inside the second segment [38, 76): only the first goes.
    queue.release(positions[2].1).await.unwrap();
    assert_eq!(segment_files(dir.path()).len(), 3);
    let stats = queue.stats();
    assert_eq!(stats.first, Position(38));
    assert_eq!(stats.released, positions[2].1);
    assert_eq!(stats.pending_bytes, 4 * FRAME);
    match queue.read(Position(0), 10, 1 << 20, Duration::ZERO).await {
        Err(QueueError::Released { requested, first }) => {
            assert_eq!((requested, first), (Position(0), Position(38)));
        }
        other => panic!("expected Released, got {other:?}"),
    }
    assert_payloads(&read_all(&queue, positions[3].0).await, 3..7);

    // Releasing an older position changes nothing.
    queue.release(Position(0)).await.unwrap();
    assert_eq!(queue.stats().released, positions[2].1);

    // Releasing everything keeps the active segment.
    queue.release(positions[6].1).await.unwrap();
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(format!("{:020}.seg", 114)));
    let stats = queue.stats();
    assert_eq!(
        (stats.first, stats.pending_bytes, stats.segments),
        (Position(114), 0, 1)
    );
    let (start, _) = queue.append(payload(7)).await.unwrap();
    assert_eq!(start, positions[6].1);
    queue.close().await;
    drop(queue);

    let queue = open_small(dir.path());
    let stats = queue.stats();
    assert_eq!(
        (stats.first, stats.released),
        (Position(114), Position(114))
    );
    assert_payloads(&read_all(&queue, positions[6].0).await, 6..8);
}

#[tokio::test]
async fn full_until_released() {
    let dir = TempDir::new().unwrap();
    let queue = EmbeddedQueue::open(EmbeddedQueueConfig {
        max_bytes: 100,
        ..EmbeddedQueueConfig::new(dir.path())
    })
    .unwrap();
    let positions = append_n(&queue, 0..5).await;
    match queue.append(payload(5)).await {
        Err(QueueError::Full {
            pending_bytes,
            max_bytes,
        }) => assert_eq!((pending_bytes, max_bytes), (5 * FRAME, 100)),
        other => panic!("expected Full, got {other:?}"),
    }
    queue.release(positions[1].1).await.unwrap();
    let (start, _) = queue.append(payload(5)).await.unwrap();
    assert_eq!(start, positions[4].1);
    queue.append(payload(6)).await.unwrap();
    assert!(matches!(
        queue.append(payload(7)).await,
        Err(QueueError::Full { .. })
    ));
}

#[tokio::test]
async fn read_at_the_end_waits_for_an_append() {
    let dir = TempDir::new().unwrap();
    let queue = Arc::new(open(dir.path()));

    let started = Instant::now();
    let none = queue
        .read(Position(0), 10, 1 << 20, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));

    let reader = {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let started = Instant::now();
            let records = queue
                .read(Position(0), 10, 1 << 20, Duration::from_secs(10))
                .await
                .unwrap();
            (records, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.append(payload(0)).await.unwrap();
    let (records, waited) = reader.await.unwrap();
    assert_payloads(&records, 0..1);
    assert!(waited < Duration::from_secs(2), "read took {waited:?}");
}

#[tokio::test]
async fn read_past_the_end_is_an_error() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    append_n(&queue, 0..1).await;
    let result = queue
        .read(Position(1000), 10, 1 << 20, Duration::ZERO)
        .await;
    assert!(matches!(result, Err(QueueError::Corrupt(_))), "{result:?}");
}

#[tokio::test]
async fn oversized_records_are_rejected() {
    let dir = TempDir::new().unwrap();
    let queue = EmbeddedQueue::open(EmbeddedQueueConfig {
        max_record_bytes: 16,
        ..EmbeddedQueueConfig::new(dir.path())
    })
    .unwrap();
    match queue.append(Bytes::from(vec![1u8; 17])).await {
        Err(QueueError::RecordTooLarge { size, max }) => assert_eq!((size, max), (17, 16)),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    let (start, next) = queue.append(Bytes::from(vec![1u8; 16])).await.unwrap();
    assert_eq!((start, next), (Position(0), Position(16 + HEADER_LEN)));
}
