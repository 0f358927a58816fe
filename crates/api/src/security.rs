//! Security events: what Logbook records about itself in the tenant's audit
//! stream (logins, users, keys, roles, settings, tenants).
//!
//! They are built here as ordinary events of the audit stream and written to
//! the metadata store's outbox with the change they describe; the server
//! drains the outbox into the queue, so they travel the same pipeline as every
//! other event.

use meta::AuditEntry;
use model::{Event, Level, Source, Stream, Timestamp};
use serde_json::{Map, Value, json};

/// Who did something: a user, an API key, or an operator at the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user`, `api_key`, `operator` or `anonymous`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The operator running `logbook admin` or the server's own bootstrap.
    pub fn operator(name: &str) -> Actor {
        Actor {
            kind: "operator",
            id: name.to_owned(),
            name: name.to_owned(),
            source_ip: None,
            user_agent: None,
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One security-relevant action.
#[derive(Debug, Clone)]
pub struct SecurityEvent<'a> {
    pub tenant: &'a str,
    /// A dotted action name: `auth.login`, `user.create`, `key.revoke`…
    pub action: &'static str,
    pub outcome: Outcome,
    pub actor: &'a Actor,
    /// What was acted on: `("user", id)`, `("api_key", id)`…
    pub target: Option<(&'static str, &'a str)>,
    pub reason: Option<&'a str>,
    /// Anything else worth keeping (the new role, the scopes of a key…).
    pub details: Map<String, Value>,
}

impl SecurityEvent<'_> {
    /// The event as an outbox entry of its tenant's audit stream.
    pub fn entry(&self) -> AuditEntry {
        let now = Timestamp::now();
        let id = ulid::Ulid::new().to_string();
        let target = self
            .target
            .map(|(kind, id)| json!({"type": kind, "id": id}));
        let mut attributes = Map::new();
        attributes.insert("action".into(), json!(self.action));
        attributes.insert("outcome".into(), json!(self.outcome.name()));
        attributes.insert(
            "actor".into(),
            json!({"type": self.actor.kind, "id": self.actor.id, "name": self.actor.name}),
        );
        if let Some(target) = target {
            attributes.insert("target".into(), target);
        }
        if let Some(reason) = self.reason {
            attributes.insert("reason".into(), json!(reason));
        }
        if let Some(agent) = &self.actor.user_agent {
            attributes.insert("user_agent".into(), json!(agent));
        }
        if !self.details.is_empty() {
            attributes.insert("details".into(), Value::Object(self.details.clone()));
        }
        let message = match self.target {
            Some((kind, target)) => format!(
                "{} {} by {} {} on {kind} {target}",
                self.action,
                self.outcome.name(),
                self.actor.kind,
                self.actor.name
            ),
            None => format!(
                "{} {} by {} {}",
                self.action,
                self.outcome.name(),
                self.actor.kind,
                self.actor.name
            ),
        };
        let event = Event {
            id: id.clone(),
            tenant: self.tenant.to_owned(),
            stream: Stream::Audit,
            source: Some(Source::Logbook),
            seq: None,
            timestamp: now,
            received_at: now,
            service: Some(model::RESERVED_SERVICE.to_owned()),
            level: if self.outcome == Outcome::Success {
                Level::Info
            } else {
                Level::Warn
            },
            message,
            trace_id: None,
            span_id: None,
            host: None,
            user_id: (self.actor.kind == "user").then(|| self.actor.id.clone()),
            source_ip: self.actor.source_ip.clone(),
            attributes,
        };
        AuditEntry {
            id,
            tenant: self.tenant.to_owned(),
            // An Event of strings, numbers and maps always serialises.
            event: serde_json::to_string(&event).unwrap_or_default(),
        }
    }
}

/// Shorthand for an event with no target, reason or details.
pub fn simple<'a>(
    tenant: &'a str,
    action: &'static str,
    outcome: Outcome,
    actor: &'a Actor,
) -> SecurityEvent<'a> {
    SecurityEvent {
        tenant,
        action,
        outcome,
        actor,
        target: None,
        reason: None,
        details: Map::new(),
    }
}
