//! Rows in PostgreSQL's binary `COPY` format: no quoting or escaping of
//! values, and the tsvector arrives already split into lexemes.

/// The signature, flags and header extension every binary `COPY` starts with.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The field count that ends the data.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();

/// A binary `COPY` stream being written.
pub(crate) struct CopyData(Vec<u8>);

impl CopyData {
    pub fn new() -> Self {
        CopyData(HEADER.to_vec())
    }

    /// Appends a row already encoded with [`Row`].
    pub fn push(&mut self, row: &[u8]) {
        self.0.extend_from_slice(row);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&TRAILER);
        self.0
    }
}

/// One row being encoded.
pub(crate) struct Row(Vec<u8>);

impl Row {
    pub fn new(fields: i16, capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity + 2);
        bytes.extend_from_slice(&fields.to_be_bytes());
        Row(bytes)
    }

    fn length(&mut self, length: usize) {
        // Values are far below 1 GiB (events are limited long before).
        self.0.extend_from_slice(&(length as i32).to_be_bytes());
    }

    pub fn text(&mut self, value: &str) {
        self.length(value.len());
        self.0.extend_from_slice(value.as_bytes());
    }

    pub fn null(&mut self) {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub fn int2(&mut self, value: i16) {
        self.length(2);
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    pub fn int8(&mut self, value: i64) {
        self.length(8);
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    /// A `jsonb` value from its JSON text.
    pub fn jsonb(&mut self, json: &str) {
        self.length(json.len() + 1);
        self.0.push(1);
        self.0.extend_from_slice(json.as_bytes());
    }

    /// A value whose binary form `encode` appends.
    pub fn raw(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        encode(&mut self.0);
        let length = (self.0.len() - at - 4) as i32;
        self.0[at..at + 4].copy_from_slice(&length.to_be_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}
