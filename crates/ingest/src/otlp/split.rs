//! Cutting an export into its resources, scopes and records without decoding
//! them, so each part is decoded on its own and only once its size is known
//! to be within the event limit: a record of a few bytes on the wire can
//! decode into hundreds, and one decoded whole could ask for gigabytes.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::{IngestError, bounds};

/// One part of an export as sent: protobuf bytes or a JSON value.
#[derive(Clone, Copy)]
pub(super) enum Raw<'a> {
    Protobuf(&'a [u8]),
    Json(&'a RawValue),
}

impl Raw<'_> {
    /// Its size as sent.
    pub(super) fn len(self) -> usize {
        match self {
            Raw::Protobuf(bytes) => bytes.len(),
            Raw::Json(value) => value.get().len(),
        }
    }

    /// Decodes it as `T`.
    pub(super) fn decode<T: prost::Message + Default + DeserializeOwned>(
        self,
    ) -> Result<T, String> {
        match self {
            Raw::Protobuf(bytes) => T::decode(bytes).map_err(|error| error.to_string()),
            Raw::Json(value) => {
                serde_json::from_str(value.get()).map_err(|error| error.to_string())
            }
        }
    }
}

/// A `ResourceLogs`: its resource and its scopes.
pub(super) struct RawResource<'a> {
    pub(super) resource: Option<Raw<'a>>,
    pub(super) scopes: Vec<RawScope<'a>>,
}

/// A `ScopeLogs`: its scope and its records.
pub(super) struct RawScope<'a> {
    pub(super) scope: Option<Raw<'a>>,
    pub(super) records: Vec<Raw<'a>>,
}

/// The parts of a protobuf `ExportLogsServiceRequest`. Only repeated
/// fields are kept, and [`bounds::protobuf`] counted those first.
pub(super) fn protobuf(body: &[u8]) -> Result<Vec<RawResource<'_>>, IngestError> {
    // ExportLogsServiceRequest.resource_logs = 1.
    let mut all_resource_logs = Vec::new();
    bounds::for_each_field(body, |tag, bytes| {
        if tag == 1 {
            all_resource_logs.push(bytes);
        }
    })?;
    let mut resources = Vec::with_capacity(all_resource_logs.len());
    for resource_logs in all_resource_logs {
        let mut resource = None;
        let mut all_scope_logs = Vec::new();
        // ResourceLogs.resource = 1, .scope_logs = 2.
        bounds::for_each_field(resource_logs, |tag, bytes| match tag {
            1 => resource = Some(Raw::Protobuf(bytes)),
            2 => all_scope_logs.push(bytes),
            _ => {}
        })?;
        let mut scopes = Vec::with_capacity(all_scope_logs.len());
        for scope_logs in all_scope_logs {
            let mut scope = RawScope {
                scope: None,
                records: Vec::new(),
            };
            // ScopeLogs.scope = 1, .log_records = 2.
            bounds::for_each_field(scope_logs, |tag, bytes| match tag {
                1 => scope.scope = Some(Raw::Protobuf(bytes)),
                2 => scope.records.push(Raw::Protobuf(bytes)),
                _ => {}
            })?;
            scopes.push(scope);
        }
        resources.push(RawResource { resource, scopes });
    }
    Ok(resources)
}

#[derive(Deserialize)]
struct JsonRequest<'a> {
    #[serde(borrow, default, rename = "resourceLogs")]
    resource_logs: Vec<JsonResourceLogs<'a>>,
}

#[derive(Deserialize)]
struct JsonResourceLogs<'a> {
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "scopeLogs")]
    scope_logs: Vec<JsonScopeLogs<'a>>,
}

#[derive(Deserialize)]
struct JsonScopeLogs<'a> {
    #[serde(borrow, default)]
    scope: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "logRecords")]
    log_records: Vec<&'a RawValue>,
}

/// The parts of an `ExportLogsServiceRequest` in OTLP's JSON mapping.
pub(super) fn json(body: &[u8]) -> Result<Vec<RawResource<'_>>, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| IngestError::malformed(format!("the body is not UTF-8: {error}")))?;
    let request: JsonRequest = serde_json::from_str(text).map_err(|error| {
        IngestError::malformed(format!(
            "the body is not an OTLP ExportLogsServiceRequest in JSON: {error}"
        ))
    })?;
    Ok(request
        .resource_logs
        .into_iter()
        .map(|resource_logs| RawResource {
            resource: resource_logs.resource.map(Raw::Json),
            scopes: resource_logs
                .scope_logs
                .into_iter()
                .map(|scope_logs| RawScope {
                    scope: scope_logs.scope.map(Raw::Json),
                    records: scope_logs.log_records.into_iter().map(Raw::Json).collect(),
                })
                .collect(),
        })
        .collect())
}
