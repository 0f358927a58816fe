//! Elasticsearch's bulk API (`POST /es/_bulk`, `/es/{index}/_bulk`) as log
//! shippers use it: `create` and `index` actions, each followed by its
//! document, answered with one item per action, in order, in the shape
//! Fluent Bit, Vector, Filebeat and the official clients read.

mod decode;
mod respond;

pub use decode::{Action, Actions, decode};
pub use respond::{bulk_response, error_body};

#[cfg(test)]
mod tests;
