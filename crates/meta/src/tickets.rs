//! Tail tickets: short-lived, single-use credentials a browser puts in a
//! WebSocket URL instead of a key. They live here rather than in a process's
//! memory so that a ticket issued by one query node can be redeemed at another.

use sqlx::Row as _;

use crate::{MetaError, MetaStore, query_failed};

/// A ticket to store. Only a hash of the ticket is kept.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// A hash of the ticket string.
    pub hash: String,
    pub tenant: String,
    /// Who holds it (`user:<id>` or `key:<id>`), for the bound per holder.
    pub owner: String,
    /// What the redeemer becomes, as the API wrote it.
    pub principal: String,
    /// Unix milliseconds after which it is refused.
    pub expires_at: i64,
}

/// What redeeming a live ticket gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemedTicket {
    pub tenant: String,
    pub principal: String,
}

impl MetaStore {
    /// Stores a ticket unless `owner` already holds `max_live` live ones;
    /// returns whether it was stored. Expired tickets are deleted first.
    pub async fn issue_ticket(
        &self,
        ticket: &NewTicket,
        max_live: usize,
        now: i64,
    ) -> Result<bool, MetaError> {
        let failed = query_failed("issuing a tail ticket");
        sqlx::query("DELETE FROM tail_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(&failed)?;
        // The count and the insert are one statement: concurrent issues by one
        // owner can overshoot the bound only by how many run at the same time.
        let inserted = sqlx::query(
            "INSERT INTO tail_tickets (hash, tenant_id, owner, principal, created_at, expires_at)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE (SELECT COUNT(*) FROM tail_tickets WHERE owner = $3 AND expires_at > $5) < $7",
        )
        .bind(&ticket.hash)
        .bind(&ticket.tenant)
        .bind(&ticket.owner)
        .bind(&ticket.principal)
        .bind(now)
        .bind(ticket.expires_at)
        .bind(i64::try_from(max_live).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(&failed)?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes the ticket with this hash: it is deleted by the same statement
    /// that reads it, so of two redemptions at once only one gets it. An
    /// expired ticket is deleted and gives nothing.
    pub async fn redeem_ticket(
        &self,
        hash: &str,
        now: i64,
    ) -> Result<Option<RedeemedTicket>, MetaError> {
        let failed = query_failed("redeeming a tail ticket");
        let row = sqlx::query(
            "DELETE FROM tail_tickets WHERE hash = $1 RETURNING tenant_id, principal, expires_at",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(&failed)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get("expires_at").map_err(&failed)?;
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(RedeemedTicket {
            tenant: row.try_get("tenant_id").map_err(&failed)?,
            principal: row.try_get("principal").map_err(&failed)?,
        }))
    }
}
