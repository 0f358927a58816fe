//! [`AuditLog`] over the embedded store's trails: checkpoints, proofs and
//! leaves read from a `TrailView` outside the indexing lock,
//! and audit retention (`audit_retention.rs`).

use std::time::Instant;

use async_trait::async_trait;
use model::Timestamp;

use super::EmbeddedStore;
use crate::{AuditLog, StoreError};

#[async_trait]
impl AuditLog for EmbeddedStore {
    fn public_key(&self) -> String {
        self.inner.verifying.to_text()
    }

    async fn checkpoint(
        &self,
        tenant: &str,
        size: Option<u64>,
    ) -> Result<Option<String>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| {
            let Some(view) = inner.trails().view(&tenant) else {
                return Ok(None);
            };
            match size {
                None => Ok(view.latest_checkpoint()),
                Some(size) => view.checkpoint_of_size(size, &inner.verifying),
            }
        })
        .await
    }

    async fn inclusion_proof(
        &self,
        tenant: &str,
        seq: u64,
        size: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.view(&tenant)?.inclusion_proof(seq, size))
            .await
    }

    async fn leaves(&self, tenant: &str, from: u64, to: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.view(&tenant)?.leaves(from, to))
            .await
    }

    async fn leaf_hashes(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.view(&tenant)?.leaf_hashes(from, to))
            .await
    }

    async fn consistency_proof(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<audit::Hash>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.view(&tenant)?.consistency_proof(from, to))
            .await
    }

    async fn expire_audit(&self, tenant: &str, before: Timestamp) -> Result<u64, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| inner.expire_audit(&tenant, before, Instant::now()))
            .await
    }

    async fn pruned(&self, tenant: &str) -> Result<u64, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |inner| Ok(inner.trails().pruned(&tenant)))
            .await
    }

    async fn pruned_seq(&self, tenant: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.blocking(move |inner| inner.pruned_seq(&tenant, &id))
            .await
    }
}
