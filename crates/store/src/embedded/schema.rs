//! The tantivy schema of the embedded store.

use std::borrow::Cow;

use model::Stream;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, STORED, Schema, TextFieldIndexing,
    TextOptions,
};

use crate::analysis::{EXACT_ANALYZER, KEYWORD_ANALYZER, TEXT_ANALYZER};

/// Handles to every field, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    /// The event's partition (see [`partition`]), not its bare tenant.
    pub tenant: Field,
    /// Event timestamp, nanoseconds since the epoch.
    pub timestamp: Field,
    /// The event key (`keys.rs`) of partition and id: finds an event by id
    /// (get and replace).
    pub key: Field,
    /// The event's place in arrival order within its partition, which breaks
    /// timestamp ties in the sort order: for a log event the queue position of
    /// its record plus its index in the record ([`model::QueuedEvent::arrival`]),
    /// for an audit event its sequence number in the tenant's trail.
    pub arrival: Field,
    /// Who wrote an audit event (`client` or `logbook`); log events have none.
    pub source: Field,
    pub service: Field,
    /// [`model::Level::rank`].
    pub level: Field,
    pub message: Field,
    pub host: Field,
    pub trace_id: Field,
    pub span_id: Field,
    pub user_id: Field,
    pub source_ip: Field,
    pub attributes: Field,
    /// The event's canonical JSON, returned as is.
    pub document: Field,
    /// One term per attribute path the event has, prefixed with its partition
    /// ([`super::known::path_token`]): which attributes a tenant's events have,
    /// answered from that tenant's terms alone.
    pub attribute_paths: Field,
}

/// What separates the audit stream's partition from its tenant.
const AUDIT_SUFFIX: &str = "\u{1f}audit";

/// The partition of the index that holds the events of `tenant` in `stream`:
/// the value of the `tenant` field and the tenant part of every event key.
///
/// Everything that indexes, filters or keys events by tenant goes through this
/// one function, so the two streams of a tenant are as far apart as two tenants.
/// A log event's partition is its bare tenant (indexes and keys written before
/// streams existed stay valid); an audit event's is the tenant followed by
/// U+001F and `audit`. Tenant names are validated elsewhere to `[a-z0-9-]`, so
/// they never contain U+001F and no tenant's logs can be mistaken for another
/// tenant's audit trail. The stored JSON keeps the real tenant and stream.
pub(crate) fn partition(tenant: &str, stream: Stream) -> Cow<'_, str> {
    match stream {
        Stream::Logs => Cow::Borrowed(tenant),
        Stream::Audit => Cow::Owned(format!("{tenant}{AUDIT_SUFFIX}")),
    }
}

/// Builds the schema and the handles to its fields.
pub(crate) fn build() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let exact = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(EXACT_ANALYZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TEXT_ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(false),
    );
    // Each value one term, as it is.
    let whole = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let attributes = JsonObjectOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD_ANALYZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        )
        .set_expand_dots_enabled();

    let fields = Fields {
        tenant: builder.add_text_field("tenant", exact.clone()),
        timestamp: builder.add_i64_field("timestamp", FAST),
        key: builder.add_u64_field("key", INDEXED),
        arrival: builder.add_u64_field("arrival", FAST),
        service: builder.add_text_field("service", exact.clone().set_fast("raw")),
        level: builder.add_u64_field("level", INDEXED | FAST),
        message: builder.add_text_field("message", text),
        host: builder.add_text_field("host", exact.clone()),
        trace_id: builder.add_text_field("trace_id", exact.clone()),
        span_id: builder.add_text_field("span_id", exact.clone()),
        user_id: builder.add_text_field("user_id", exact.clone()),
        source_ip: builder.add_text_field("source_ip", exact.clone()),
        source: builder.add_text_field("source", exact),
        attributes: builder.add_json_field("attributes", attributes),
        document: builder.add_bytes_field("document", STORED),
        attribute_paths: builder.add_text_field("attribute_paths", whole),
    };
    (builder.build(), fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenants_logs_partition_is_the_tenant_and_its_audit_partition_is_apart() {
        assert_eq!(partition("acme", Stream::Logs), "acme");
        assert_eq!(partition("acme", Stream::Audit), "acme\u{1f}audit");
        assert_ne!(
            partition("acme", Stream::Audit),
            partition("acme-audit", Stream::Logs)
        );
    }
}
