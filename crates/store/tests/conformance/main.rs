//! One suite of store behaviour, written once and run against every backend:
//! the embedded store always, the PostgreSQL store when
//! `LOGBOOK_TEST_POSTGRES_URL` is set. Each case is a function of its
//! [`backends::Backend`]; `conformance!` makes one test per case and backend.

mod audit_retention;
mod audit_trails;
mod backends;
mod cases;
mod events;
mod loghub;
mod matcher_agreement;
mod matcher_data;
mod postgres_only;
mod retention;
mod semantics;

/// Instantiates every listed case as `embedded::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($module:ident::$case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = crate::backends::Embedded::new();
                    crate::$module::$case(&backend).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = crate::backends::Postgres::new(stringify!($case)).await
                    else {
                        return;
                    };
                    crate::$module::$case(&backend).await;
                    backend.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    cases::queries_find_exactly_what_they_describe,
    cases::tenants_never_see_each_other,
    cases::pages_follow_the_cursor_without_gaps_or_repeats,
    cases::stats_histogram_and_replacement,
    cases::commits_carry_the_queue_position_across_reopen,
    cases::commits_carry_partition_offsets_that_never_move_back,
    cases::semantic_query_errors_are_invalid_queries,
    cases::a_prefix_matching_too_many_terms_is_refused_where_it_stands,
    cases::a_histogram_with_too_many_buckets_is_refused,
    cases::the_same_id_in_both_streams_is_two_events_each_in_its_own_stream,
    cases::replacing_by_client_id_stays_within_the_stream,
    cases::two_tenants_by_two_streams_are_four_partitions,
    cases::source_is_the_servers_field_on_audit_and_an_attribute_on_logs,
    semantics::attribute_values_are_cut_and_typed_as_the_embedded_index_does,
    semantics::phrases_keep_the_gap_of_a_word_too_long_to_index,
    semantics::text_postgresql_cannot_hold_is_kept_as_sent,
    semantics::an_id_seen_again_is_stored_once,
    semantics::any_day_a_timestamp_holds_is_stored_and_bounded,
    loghub::loghub_samples_give_the_same_answers,
    matcher_agreement::the_matcher_finds_exactly_what_search_finds,
    matcher_agreement::the_matcher_refuses_what_search_refuses,
    audit_trails::audit_events_are_numbered_per_tenant_checkpointed_and_provable,
    audit_trails::every_checkpoint_is_served_by_its_size_after_a_restart,
    audit_trails::a_server_event_drained_twice_is_in_the_trail_once,
    audit_retention::expired_audit_events_lose_their_bodies_and_keep_their_proofs,
    retention::expired_logs_leave_every_read_and_nothing_else_does,
);
