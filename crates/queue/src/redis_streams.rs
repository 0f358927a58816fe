//! The Redis Streams [`Queue`]: ingest nodes append to one stream, workers
//! share it through a consumer group, and a record is acknowledged (and
//! deleted) only after the store committed its events.
//!
//! Keys, all under one hash tag so a Redis Cluster keeps them on one shard:
//! `{prefix}:events` is the stream, `{prefix}:meta` a hash with the position
//! counter and the pending-bytes gauge that bounds the queue. Appends and
//! acknowledgements are Lua scripts, so the bound, the counter and the stream
//! change together.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Script, Value};

use crate::follow::InOrder;
use crate::{
    Consumer, Followed, Follower, Position, Queue, QueueError, QueueStats, Record,
    RedisQueueConfig, Resume,
};

/// The consumer group every worker joins.
const GROUP: &str = "workers";

/// A group member idle this long with nothing pending belonged to a process
/// that is gone.
const DEPARTED_AFTER: Duration = Duration::from_secs(3600);

/// Keys and scripts, shared by the queue and its consumers.
struct Keys {
    stream: String,
    meta: String,
}

/// Appends if the queue is under its bounds; returns `{start, next,
/// pending_bytes}` or `{-1, pending_bytes, pending_records}` when full.
const APPEND: &str = r"
local size = string.len(ARGV[1])
local pending = tonumber(redis.call('HGET', KEYS[2], 'pending_bytes') or '0')
local records = redis.call('XLEN', KEYS[1])
if pending + size > tonumber(ARGV[2]) or records >= tonumber(ARGV[3]) then
  return {-1, pending, records}
end
local next = redis.call('HINCRBY', KEYS[2], 'next_position', size)
local now = redis.call('HINCRBY', KEYS[2], 'pending_bytes', size)
local start = next - size
redis.call('XADD', KEYS[1], '*', 'p', start, 'd', ARGV[1])
return {start, next, now}
";

/// Acknowledges `(id, size)` pairs: each record still pending is acknowledged,
/// deleted and taken off the pending-bytes gauge (once, even if two workers
/// acknowledge it). Returns the pending bytes left.
const ACK: &str = r"
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('HINCRBY', KEYS[2], 'pending_bytes', -tonumber(ARGV[i + 1]))
  end
end
return tonumber(redis.call('HGET', KEYS[2], 'pending_bytes') or '0')
";

/// A queue in Redis Streams. See the module documentation.
pub struct RedisQueue {
    client: redis::Client,
    connection: ConnectionManager,
    keys: Arc<Keys>,
    append: Script,
    ack: Arc<Script>,
    config: RedisQueueConfig,
    stats: Arc<Mutex<QueueStats>>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// Any Redis failure means the queue cannot take or give records now.
fn unavailable(error: redis::RedisError) -> QueueError {
    QueueError::Unreachable(format!("redis: {error}"))
}

impl RedisQueue {
    /// Connects, creates the stream and its consumer group if missing, and
    /// starts refreshing the queue's figures in the background.
    pub async fn open(config: RedisQueueConfig) -> Result<Arc<Self>, QueueError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|error| QueueError::Config(format!("bad redis URL: {error}")))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.command_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let connection = tokio::time::timeout(
            config.command_timeout * 2,
            client.get_connection_manager_with_config(manager),
        )
        .await
        .map_err(|_| QueueError::Unreachable("redis: no answer while connecting".into()))?
        .map_err(unavailable)?;
        let keys = Arc::new(Keys {
            stream: format!("{{{}}}:events", config.prefix),
            meta: format!("{{{}}}:meta", config.prefix),
        });
        let queue = Arc::new(RedisQueue {
            client,
            connection,
            keys,
            append: Script::new(APPEND),
            ack: Arc::new(Script::new(ACK)),
            config,
            stats: Arc::new(Mutex::new(QueueStats {
                backend: "redis",
                ..QueueStats::default()
            })),
        });
        queue.create_group().await?;
        queue.refresh_stats().await;
        spawn_stats_refresher(Arc::downgrade(&queue));
        Ok(queue)
    }

    /// Creates the consumer group at the stream's start (and the stream with
    /// it); an existing group is kept as it is.
    async fn create_group(&self) -> Result<(), QueueError> {
        let mut connection = self.connection.clone();
        let created: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.keys.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut connection)
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Reads the queue's size and Redis's persistence settings into the
    /// figures `stats` returns.
    async fn refresh_stats(&self) {
        let mut connection = self.connection.clone();
        let figures = async {
            let (pending_bytes, next, records): (Option<u64>, Option<u64>, u64) = redis::pipe()
                .hget(&self.keys.meta, "pending_bytes")
                .hget(&self.keys.meta, "next_position")
                .xlen(&self.keys.stream)
                .query_async(&mut connection)
                .await?;
            let persistence = persistence_warnings(&mut connection).await;
            Ok::<_, redis::RedisError>((pending_bytes, next, records, persistence))
        };
        let figures = tokio::time::timeout(self.config.command_timeout, figures).await;
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        match figures {
            Ok(Ok((pending_bytes, next, records, warnings))) => {
                stats.pending_bytes = pending_bytes.unwrap_or(0);
                stats.durable_end = Position(next.unwrap_or(0));
                stats.pending_records = Some(records);
                stats.max_bytes = self.config.max_bytes;
                stats.failed = false;
                stats.warnings = warnings;
            }
            Ok(Err(error)) => {
                stats.failed = true;
                stats.warnings = vec![format!("redis: {error}")];
            }
            Err(_) => {
                stats.failed = true;
                stats.warnings = vec!["redis: no answer".to_owned()];
            }
        }
    }

    /// Removes from the group the consumers of processes that are gone: each
    /// process joins under a new name, so without this the group's member
    /// list would grow with every restart. Only members with nothing pending
    /// and idle for longer than [`DEPARTED_AFTER`] go; failures are ignored
    /// (this is housekeeping).
    async fn forget_departed_consumers(&self) {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("XINFO");
        command.arg("CONSUMERS").arg(&self.keys.stream).arg(GROUP);
        let members =
            command.query_async::<redis::streams::StreamInfoConsumersReply>(&mut connection);
        let Ok(Ok(members)) = tokio::time::timeout(self.config.command_timeout, members).await
        else {
            return;
        };
        for member in members.consumers {
            if member.pending == 0 && member.idle as u128 > DEPARTED_AFTER.as_millis() {
                let _: Result<i64, _> = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.keys.stream)
                    .arg(GROUP)
                    .arg(&member.name)
                    .query_async(&mut connection)
                    .await;
            }
        }
    }

    /// A connection for one consumer: it blocks in XREADGROUP, so it is its
    /// own, and has no response timeout (each command sets its deadline).
    async fn consumer_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        blocking_connection(&self.client, self.config.command_timeout).await
    }

    fn set_failed(&self, failed: bool) {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed = failed;
    }
}

/// A connection of its own for a reader that blocks (XREADGROUP, XREAD), with
/// no response timeout (each command sets its deadline).
async fn blocking_connection(
    client: &redis::Client,
    connect_timeout: Duration,
) -> Result<MultiplexedConnection, QueueError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(unavailable)
}

/// What an operator must know about Redis's persistence: an acknowledgement
/// is only as durable as Redis makes the stream.
async fn persistence_warnings(connection: &mut ConnectionManager) -> Vec<String> {
    let config: Result<Vec<String>, _> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("append*")
        .query_async(connection)
        .await;
    let Ok(pairs) = config else {
        return vec![
            "redis: CONFIG GET is not allowed, so its persistence settings are unknown; \
             acknowledged events survive a Redis crash only with appendonly yes and appendfsync always"
                .to_owned(),
        ];
    };
    let setting = |name: &str| {
        pairs
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_default()
    };
    match (setting("appendonly").as_str(), setting("appendfsync").as_str()) {
        ("yes", "always") => Vec::new(),
        ("yes", fsync) => vec![format!(
            "redis appendfsync is {fsync}: a Redis crash can lose the last second or so of acknowledged events (appendfsync always loses none)"
        )],
        _ => vec![
            "redis appendonly is off: acknowledged events that no worker has stored yet are lost if Redis stops (set appendonly yes, appendfsync always)"
                .to_owned(),
        ],
    }
}

/// Refreshes the figures every second while the queue lives.
fn spawn_stats_refresher(queue: Weak<RedisQueue>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(queue) = queue.upgrade() else { return };
            queue.refresh_stats().await;
        }
    });
}

#[async_trait::async_trait]
impl Queue for RedisQueue {
    async fn append(&self, payload: Bytes) -> Result<(Position, Position), QueueError> {
        if payload.len() > self.config.max_record_bytes {
            return Err(QueueError::RecordTooLarge {
                size: payload.len(),
                max: self.config.max_record_bytes,
            });
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.append.prepare_invoke();
        invocation
            .key(&self.keys.stream)
            .key(&self.keys.meta)
            .arg(payload.as_ref())
            .arg(self.config.max_bytes)
            .arg(self.config.max_records);
        let answer = tokio::time::timeout(
            self.config.command_timeout,
            invocation.invoke_async::<Vec<i64>>(&mut connection),
        )
        .await;
        let answer = match answer {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                self.set_failed(true);
                return Err(unavailable(error));
            }
            Err(_) => {
                self.set_failed(true);
                // The append may still happen: the client gets no 202, so a
                // retry can store the batch twice, as with any lost answer.
                return Err(QueueError::Unreachable(
                    "redis did not answer the append in time".into(),
                ));
            }
        };
        match answer.as_slice() {
            [-1, pending, _] => Err(QueueError::Full {
                pending_bytes: u64::try_from(*pending).unwrap_or(0),
                max_bytes: self.config.max_bytes,
            }),
            [start, next, pending] => {
                let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.pending_bytes = u64::try_from(*pending).unwrap_or(0);
                stats.durable_end = Position(u64::try_from(*next).unwrap_or(0));
                stats.failed = false;
                Ok((
                    Position(u64::try_from(*start).unwrap_or(0)),
                    Position(u64::try_from(*next).unwrap_or(0)),
                ))
            }
            other => Err(QueueError::Corrupt(format!(
                "unexpected answer to an append: {other:?}"
            ))),
        }
    }

    fn resume(&self) -> Resume {
        Resume::Group
    }

    async fn consumer(self: Arc<Self>, _start: Position) -> Result<Box<dyn Consumer>, QueueError> {
        let connection = self.consumer_connection().await?;
        self.forget_departed_consumers().await;
        let name = consumer_name();
        tracing::info!(consumer = %name, group = GROUP, "joined the redis consumer group");
        Ok(Box::new(RedisConsumer {
            queue: self,
            connection: Some(connection),
            name,
            claim_from: "0-0".to_owned(),
            last_claim: None,
        }))
    }

    async fn follow(&self) -> Result<Box<dyn Follower>, QueueError> {
        // The newest entry and the position counter in one transaction: the
        // follower reads on after that entry and knows where the next record
        // starts, so a record deleted before it was read shows as a gap.
        let mut connection = self.connection.clone();
        let (newest, next): (redis::streams::StreamRangeReply, Option<u64>) = tokio::time::timeout(
            self.config.command_timeout,
            redis::pipe()
                .atomic()
                .cmd("XREVRANGE")
                .arg(&self.keys.stream)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .hget(&self.keys.meta, "next_position")
                .query_async(&mut connection),
        )
        .await
        .map_err(|_| QueueError::Unreachable("redis did not answer XREVRANGE".into()))?
        .map_err(unavailable)?;
        let after = newest
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
        Ok(Box::new(RedisFollower {
            client: self.client.clone(),
            stream: self.keys.stream.clone(),
            command_timeout: self.config.command_timeout,
            connection: None,
            after,
            order: InOrder::new(Position(next.unwrap_or(0))),
            read: std::collections::VecDeque::new(),
        }))
    }

    fn stats(&self) -> QueueStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn close(&self) {}
}

/// A name no other consumer of the group has: host, process and start time.
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.as_millis());
    format!("{host}-{}-{started}", std::process::id())
}

/// One worker's membership in the consumer group.
struct RedisConsumer {
    queue: Arc<RedisQueue>,
    /// `None` after a failure: the next read reconnects.
    connection: Option<MultiplexedConnection>,
    name: String,
    /// Where the next XAUTOCLAIM scan of the pending entries starts.
    claim_from: String,
    last_claim: Option<std::time::Instant>,
}

impl RedisConsumer {
    async fn connection(&mut self) -> Result<&mut MultiplexedConnection, QueueError> {
        if self.connection.is_none() {
            self.connection = Some(self.queue.consumer_connection().await?);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| QueueError::Unreachable("redis: not connected".into()))
    }

    /// Takes over records other consumers left unacknowledged for longer
    /// than the visibility timeout; scans at most every half timeout.
    async fn claim(&mut self, count: usize) -> Result<Vec<Record>, QueueError> {
        let timeout = self.queue.config.visibility_timeout;
        if self
            .last_claim
            .is_some_and(|last| last.elapsed() < timeout / 2)
            && self.claim_from == "0-0"
        {
            return Ok(Vec::new());
        }
        let (stream, name, from) = (
            self.queue.keys.stream.clone(),
            self.name.clone(),
            self.claim_from.clone(),
        );
        let command_timeout = self.queue.config.command_timeout;
        let connection = self.connection().await?;
        let reply = tokio::time::timeout(
            command_timeout,
            redis::cmd("XAUTOCLAIM")
                .arg(&stream)
                .arg(GROUP)
                .arg(&name)
                .arg(timeout.as_millis() as u64)
                .arg(&from)
                .arg("COUNT")
                .arg(count)
                .query_async::<redis::streams::StreamAutoClaimReply>(connection),
        )
        .await
        .map_err(|_| QueueError::Unreachable("redis did not answer XAUTOCLAIM".into()))?
        .map_err(unavailable)?;
        self.claim_from = reply.next_stream_id;
        if self.claim_from == "0-0" {
            self.last_claim = Some(std::time::Instant::now());
        }
        reply
            .claimed
            .iter()
            .map(|entry| to_record(&entry.id, &entry.map, true))
            .collect()
    }
}

/// A stream entry as a queue record.
fn to_record(
    id: &str,
    fields: &std::collections::HashMap<String, Value>,
    redelivered: bool,
) -> Result<Record, QueueError> {
    let missing = || QueueError::Corrupt(format!("stream entry {id} lacks its fields"));
    let position: u64 = match fields.get("p") {
        Some(value) => redis::from_redis_value_ref(value).map_err(|_| missing())?,
        None => return Err(missing()),
    };
    let payload: Vec<u8> = match fields.get("d") {
        Some(value) => redis::from_redis_value_ref(value).map_err(|_| missing())?,
        None => return Err(missing()),
    };
    Ok(Record {
        position: Position(position),
        next: Position(position + payload.len() as u64),
        payload: Bytes::from(payload),
        redelivered,
        receipt: Some(id.to_owned()),
        partition: None,
        attempts: 0,
    })
}

#[async_trait::async_trait]
impl Consumer for RedisConsumer {
    async fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<Record>, QueueError> {
        let _ = max_bytes; // Redis counts entries; records are bounded in size at append.
        let count = max_records.max(1);
        let result = async {
            let claimed = self.claim(count).await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
            let (stream, name) = (self.queue.keys.stream.clone(), self.name.clone());
            let block = wait.as_millis().max(1) as u64;
            let command_timeout = self.queue.config.command_timeout;
            let connection = self.connection().await?;
            let reply = tokio::time::timeout(
                wait + command_timeout,
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(&name)
                    .arg("COUNT")
                    .arg(count)
                    .arg("BLOCK")
                    .arg(block)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">")
                    .query_async::<Option<redis::streams::StreamReadReply>>(connection),
            )
            .await
            .map_err(|_| QueueError::Unreachable("redis did not answer XREADGROUP".into()))?
            .map_err(unavailable)?;
            let Some(reply) = reply else {
                return Ok(Vec::new());
            };
            reply
                .keys
                .iter()
                .flat_map(|key| key.ids.iter())
                .map(|entry| to_record(&entry.id, &entry.map, false))
                .collect()
        }
        .await;
        if let Err(QueueError::Unreachable(_)) = &result {
            self.connection = None;
        }
        result
    }

    async fn ack(&mut self, records: &[Record]) -> Result<(), QueueError> {
        if records.is_empty() {
            return Ok(());
        }
        let (stream, meta) = (self.queue.keys.stream.clone(), self.queue.keys.meta.clone());
        let ack = Arc::clone(&self.queue.ack);
        let command_timeout = self.queue.config.command_timeout;
        let connection = self.connection().await?;
        let mut invocation = ack.prepare_invoke();
        invocation.key(&stream).key(&meta).arg(GROUP);
        for record in records {
            let Some(id) = &record.receipt else { continue };
            invocation
                .arg(id)
                .arg(record.next.0.saturating_sub(record.position.0));
        }
        let done =
            tokio::time::timeout(command_timeout, invocation.invoke_async::<i64>(connection)).await;
        match done {
            Ok(Ok(pending)) => {
                self.queue
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending_bytes = u64::try_from(pending).unwrap_or(0);
                Ok(())
            }
            Ok(Err(error)) => {
                self.connection = None;
                Err(unavailable(error))
            }
            Err(_) => {
                self.connection = None;
                Err(QueueError::Unreachable(
                    "redis did not answer an acknowledgement".into(),
                ))
            }
        }
    }
}

/// Entries one XREAD of a follower returns at most.
const FOLLOW_BATCH: usize = 256;

/// Follows the stream with XREAD on a connection of its own, from the entry
/// that was newest when it started; it is no member of the consumer group, so
/// it takes nothing from the workers. A record the workers acknowledged (and
/// deleted) before it was read shows as a gap in the positions.
struct RedisFollower {
    client: redis::Client,
    stream: String,
    command_timeout: Duration,
    /// `None` after a failure: the next read reconnects.
    connection: Option<MultiplexedConnection>,
    /// The id of the last entry read.
    after: String,
    order: InOrder,
    /// Entries read and not yet handed out.
    read: std::collections::VecDeque<Record>,
}

impl RedisFollower {
    async fn read_more(&mut self, wait: Duration) -> Result<(), QueueError> {
        if self.connection.is_none() {
            self.connection = Some(blocking_connection(&self.client, self.command_timeout).await?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(QueueError::Unreachable("redis: not connected".into()));
        };
        let reply = tokio::time::timeout(
            wait + self.command_timeout,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(FOLLOW_BATCH)
                .arg("BLOCK")
                .arg(wait.as_millis().max(1) as u64)
                .arg("STREAMS")
                .arg(&self.stream)
                .arg(&self.after)
                .query_async::<Option<redis::streams::StreamReadReply>>(connection),
        )
        .await
        .map_err(|_| QueueError::Unreachable("redis did not answer XREAD".into()))?
        .map_err(unavailable)?;
        for entry in reply
            .iter()
            .flat_map(|reply| &reply.keys)
            .flat_map(|key| &key.ids)
        {
            let mut record = to_record(&entry.id, &entry.map, false)?;
            record.receipt = None;
            self.after.clone_from(&entry.id);
            self.read.push_back(record);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Follower for RedisFollower {
    async fn next(&mut self, wait: Duration) -> Result<Option<Followed>, QueueError> {
        if let Some(due) = self.order.take_held() {
            return Ok(Some(due));
        }
        if self.read.is_empty() {
            let read = self.read_more(wait).await;
            if let Err(QueueError::Unreachable(_)) = &read {
                self.connection = None;
            }
            read?;
        }
        Ok(self.read.pop_front().map(|record| self.order.seen(record)))
    }
}
