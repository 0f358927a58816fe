//! The canonical byte form of an audit event: the bytes its Merkle leaf is the hash of.
//!
//! A verifier recomputes an event's leaf hash as
//! `leaf_hash(canonical_json(event))` from the event's JSON exactly as the API returns
//! it, so the form must be reproducible by anyone, in any language. It is the JSON text
//! that serde_json's compact serializer produces, with object keys sorted. (It resembles
//! RFC 8785, JCS, but is not it: key order and number formatting differ.)
//!
//! - **No insignificant whitespace**: no spaces, tabs or newlines between tokens.
//! - **Objects** are written `{` key `:` value `,` key `:` value … `}` with their members
//!   sorted by key, comparing the keys' UTF-8 bytes lexicographically (a shorter key that is
//!   a prefix of a longer one comes first). This is the order of Unicode code points, not of
//!   UTF-16 code units: `"\u{e9}"` (é, bytes C3 A9) sorts before `"\u{1F600}"` (bytes F0 …)
//!   and after `"z"`; U+FF61 (EF BD A1) sorts before U+1F600, although its UTF-16 code
//!   unit is larger. Keys are unique (a parsed object keeps the last of duplicate keys).
//!   Sorting applies at every depth, including objects inside arrays.
//! - **Arrays** are written `[` value `,` value … `]` in their own order.
//! - **`null`, `true`, `false`** as those words.
//! - **Strings** (keys and values) between `"` quotes, every character written as its
//!   UTF-8 bytes except these, which are escaped:
//!   - `"` as `\"` and `\` as `\\`;
//!   - U+0008 as `\b`, U+0009 as `\t`, U+000A as `\n`, U+000C as `\f`, U+000D as `\r`;
//!   - every other character below U+0020 as `\u00XX` with two **lowercase** hex digits
//!     (U+001F is `\u001f`).
//!
//!   Nothing else is escaped: not `/`, not U+007F, not U+2028/U+2029, not non-ASCII
//!   characters, and no `\uXXXX` escape in the input survives as such (the parser has
//!   already turned it into the character).
//! - **Numbers**: an integer that fits in a signed or unsigned 64-bit integer is written
//!   as plain decimal digits with a leading `-` if negative and no leading zeros, `+`,
//!   fraction or exponent (`-7`, `0`, `18446744073709551615`). Any other number is an IEEE
//!   754 double, written from its shortest round-trip decimal digits `d1 d2 … dn` and
//!   exponent `E`: the fewest digits whose value `d1.d2…dn × 10^E` reads back as the same
//!   double (the closest to it if several), with `d1` non-zero unless the value is zero
//!   (then `0` and `E = 0`). A `-` comes first if the sign bit is set (so `-0.0`). Then:
//!   - if `-5 ≤ E ≤ 15`, in fixed notation with at least one digit after the point:
//!     `0.0`, `1.0`, `1.5`, `100.0`, `0.00001`, `0.000015`, `1000000000000000.0`;
//!   - otherwise as `d1`, then `.d2…dn` if `n > 1`, then `e`, then `+` or `-` and the
//!     exponent's digits without leading zeros: `1e+16`, `1.5e+16`, `1e-6`, `1.5e-7`,
//!     `5e-324`, `1.7976931348623157e+308`.
//!
//!   This is how serde_json 1.0.154 prints numbers. The rule is implemented here rather
//!   than delegated, so that a serde_json upgrade (its float printer has changed before)
//!   cannot change the bytes of existing leaves. Logbook's own event fields are integers;
//!   events with fractional numbers are still reproducible from the rule above.
//!
//! # Known answer
//!
//! ```
//! use audit::canonical_json;
//! let event = serde_json::json!({
//!     "seq": 7,
//!     "actor": {"name": "Zoë", "id": 42},
//!     "action": "login\n\"ok\"",
//!     "tags": [{"b": false, "a": null}, 1.5, -3],
//! });
//! assert_eq!(
//!     canonical_json(&event),
//!     r#"{"action":"login\n\"ok\"","actor":{"id":42,"name":"Zoë"},"seq":7,"tags":[{"a":null,"b":false},1.5,-3]}"#
//!         .as_bytes(),
//! );
//! ```

use std::fmt::Write as _;

use serde_json::{Number, Value};

/// One pending piece of output: the serializer walks the value with an explicit stack, so
/// arbitrarily deep values cannot overflow the call stack.
enum Piece<'a> {
    /// A JSON value still to be written.
    Value(&'a Value),
    /// An object key still to be written, followed by its `:`.
    Key(&'a str),
    /// Literal punctuation.
    Text(&'static str),
}

/// The canonical JSON bytes of `value`, as specified in the [module documentation](self).
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = String::new();
    let mut stack = vec![Piece::Value(value)];
    while let Some(piece) = stack.pop() {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Key(key) => {
                write_string(&mut out, key);
                out.push(':');
            }
            Piece::Value(Value::Null) => out.push_str("null"),
            Piece::Value(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Piece::Value(Value::Number(n)) => write_number(&mut out, n),
            Piece::Value(Value::String(s)) => write_string(&mut out, s),
            Piece::Value(Value::Array(items)) => {
                out.push('[');
                stack.push(Piece::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Piece::Value(item));
                    if i > 0 {
                        stack.push(Piece::Text(","));
                    }
                }
            }
            Piece::Value(Value::Object(map)) => {
                out.push('{');
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                stack.push(Piece::Text("}"));
                for (i, (key, item)) in members.into_iter().enumerate().rev() {
                    stack.push(Piece::Value(item));
                    stack.push(Piece::Key(key));
                    if i > 0 {
                        stack.push(Piece::Text(","));
                    }
                }
            }
        }
    }
    out.into_bytes()
}

/// Writes a number by the rule in the module documentation.
fn write_number(out: &mut String, n: &Number) {
    // Writing into a String cannot fail, so the `fmt::Result`s are ignored.
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
        write_float(out, f);
    } else {
        // Not reachable with serde_json's default features (a Number is an integer or a
        // finite double); with `arbitrary_precision` it keeps the number's own text.
        let _ = write!(out, "{n}");
    }
}

/// Writes a finite double by the rule in the module documentation.
fn write_float(out: &mut String, f: f64) {
    let scientific = shortest_scientific(f.abs());
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        let _ = write!(out, "{f}");
        return;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        let _ = write!(out, "{f}");
        return;
    };
    if f.is_sign_negative() {
        out.push('-');
    }
    if !(-5..=15).contains(&exponent) {
        let sign = if exponent > 0 { "+" } else { "-" };
        let _ = write!(out, "{mantissa}e{sign}{}", exponent.unsigned_abs());
        return;
    }
    let digits = mantissa.replace('.', "");
    if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n(
            '0',
            exponent.unsigned_abs() as usize - 1,
        ));
        out.push_str(&digits);
        return;
    }
    let whole = exponent as usize + 1;
    if digits.len() <= whole {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', whole - digits.len()));
        out.push_str(".0");
    } else {
        out.push_str(&digits[..whole]);
        out.push('.');
        out.push_str(&digits[whole..]);
    }
}

/// The shortest round-trip digits of a finite, non-negative double in the form
/// `d1[.d2…dn]e[-]E`, the closest to its exact value, ties going to an even last digit.
///
/// Rust's `{:e}` gives the shortest length `n` and the closest digits, but breaks exact
/// ties upwards; its fixed-precision formatting rounds ties to even. So the value rounded
/// to `n` digits is taken when it reads back as the same double (it fails only at the
/// uneven rounding interval below a power of two, where the shortest digits are kept).
fn shortest_scientific(f: f64) -> String {
    let shortest = format!("{f:e}");
    let digits = shortest.split('e').next().map_or(0, |mantissa| {
        mantissa.bytes().filter(u8::is_ascii_digit).count()
    });
    let rounded = format!("{f:.*e}", digits.saturating_sub(1));
    if rounded != shortest && rounded.parse::<f64>() == Ok(f) {
        rounded
    } else {
        shortest
    }
}

/// Writes `s` as a quoted JSON string with serde_json's escapes.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(at) = rest.find(needs_escape) {
        out.push_str(&rest[..at]);
        // Every character that needs an escape is ASCII, so it is one byte long.
        let byte = rest.as_bytes()[at];
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            0x09 => out.push_str("\\t"),
            0x0A => out.push_str("\\n"),
            0x0C => out.push_str("\\f"),
            0x0D => out.push_str("\\r"),
            _ => {
                let _ = write!(out, "\\u{byte:04x}");
            }
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Whether serde_json escapes this character.
fn needs_escape(c: char) -> bool {
    c < '\u{20}' || c == '"' || c == '\\'
}

#[cfg(test)]
mod tests;
