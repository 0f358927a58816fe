//! Table-driven and randomized tests for the query parser.

use crate::{
    Comparison, Limits, ParseError, ParseErrorKind, Predicate, Query, parse, parse_within,
};

fn text(s: &str) -> Query {
    Query::Text(s.to_owned())
}

fn text_prefix(s: &str) -> Query {
    Query::TextPrefix {
        prefix: s.to_owned(),
        position: 0,
    }
}

fn phrase(s: &str) -> Query {
    Query::Phrase(s.to_owned())
}

fn field(name: &str, predicate: Predicate) -> Query {
    Query::Field {
        field: name.to_owned(),
        predicate,
        position: 0,
    }
}

fn eq(name: &str, value: &str) -> Query {
    field(name, Predicate::Equals(value.to_owned()))
}

fn prefix(name: &str, value: &str) -> Query {
    field(name, Predicate::Prefix(value.to_owned()))
}

fn cmp(name: &str, comparison: Comparison, value: &str) -> Query {
    field(name, Predicate::Compare(comparison, value.to_owned()))
}

fn range(name: &str, lower: Option<&str>, upper: Option<&str>) -> Query {
    field(
        name,
        Predicate::Range {
            lower: lower.map(str::to_owned),
            upper: upper.map(str::to_owned),
        },
    )
}

fn and(items: Vec<Query>) -> Query {
    Query::And(items)
}

fn or(items: Vec<Query>) -> Query {
    Query::Or(items)
}

fn not(query: Query) -> Query {
    Query::Not(Box::new(query))
}

/// The tree with every term position zeroed, to compare structure only.
fn without_positions(query: Query) -> Query {
    match query {
        Query::And(items) => Query::And(items.into_iter().map(without_positions).collect()),
        Query::Or(items) => Query::Or(items.into_iter().map(without_positions).collect()),
        Query::Not(inner) => Query::Not(Box::new(without_positions(*inner))),
        Query::TextPrefix { prefix, .. } => Query::TextPrefix {
            prefix,
            position: 0,
        },
        Query::Field {
            field, predicate, ..
        } => Query::Field {
            field,
            predicate,
            position: 0,
        },
        other => other,
    }
}

fn check(input: &str, expected: Query) {
    assert_eq!(
        parse(input).map(without_positions),
        Ok(expected),
        "input: {input:?}"
    );
}

#[test]
fn terms_carry_their_byte_offset() {
    let query = parse("é level:>=warnn OR (pay* -x:1)").expect("valid");
    let expected = or(vec![
        and(vec![
            text("é"),
            Query::Field {
                field: "level".into(),
                predicate: Predicate::Compare(Comparison::Ge, "warnn".into()),
                position: 3,
            },
        ]),
        and(vec![
            Query::TextPrefix {
                prefix: "pay".into(),
                position: 21,
            },
            not(Query::Field {
                field: "x".into(),
                predicate: Predicate::Equals("1".into()),
                position: 27,
            }),
        ]),
    ]);
    assert_eq!(query, expected);
}

#[test]
fn limits_refuse_long_queries_many_terms_and_short_prefixes() {
    let limits = Limits {
        max_bytes: 20,
        max_terms: 3,
        min_prefix_chars: 2,
    };
    let cases: Vec<(&str, usize, &str)> = vec![
        ("aaaaaaaaaaaaaaaaaaaaé", 20, "query.max_bytes"),
        ("aaaaaaaaaaaaaaaaaaaé", 19, "query.max_bytes"),
        ("a b c d", 6, "query.max_terms"),
        ("a OR (b -c) \"d\"", 12, "query.max_terms"),
        ("ab a*", 3, "query.min_prefix_chars"),
        ("service:p*", 0, "query.min_prefix_chars"),
        ("é*", 0, "query.min_prefix_chars"),
    ];
    for (input, position, limit) in cases {
        match parse_within(input, &limits) {
            Err(err) => {
                assert_eq!(err.kind, ParseErrorKind::TooComplex, "{input:?}: {err}");
                assert_eq!(err.position, position, "{input:?}: {err}");
                assert!(err.message.contains(limit), "{input:?}: {err}");
            }
            Ok(query) => panic!("{input:?} parsed as {query:?}"),
        }
    }
    for fine in ["a b c", "ab* service:pa*", "a OR b", "\"a b c d e f\""] {
        assert!(parse_within(fine, &limits).is_ok(), "{fine:?}");
    }
    // Syntax errors stay syntax errors.
    let err = parse_within("(a", &limits).expect_err("unclosed");
    assert_eq!(err.kind, ParseErrorKind::Syntax);
}

#[test]
fn parses_valid_queries() {
    let cases: Vec<(&str, Query)> = vec![
        // Match everything.
        ("", Query::All),
        ("   \t\n ", Query::All),
        ("*", Query::All),
        (" * ", Query::All),
        ("(*)", Query::All),
        // Words, prefixes, phrases.
        ("timeout", text("timeout")),
        ("  timeout  ", text("timeout")),
        ("connect*", text_prefix("connect")),
        ("a*b", text("a*b")),
        ("*a", text("*a")),
        ("\"connection refused\"", phrase("connection refused")),
        (r#""say \"hi\"""#, phrase(r#"say "hi""#)),
        (r#""back\\slash""#, phrase(r"back\slash")),
        (r#""C:\path""#, phrase(r"C:\path")),
        ("\"AND\"", phrase("AND")),
        ("\"a (b) c\"", phrase("a (b) c")),
        ("a\"b", text("a\"b")),
        // Unicode.
        ("café", text("café")),
        ("日本語 エラー", and(vec![text("日本語"), text("エラー")])),
        ("\u{3000}é\u{a0}ü", and(vec![text("é"), text("ü")])),
        ("\"naïve café\"", phrase("naïve café")),
        ("msg:\"ça marche\"", eq("msg", "ça marche")),
        ("msg:é*", prefix("msg", "é")),
        // Fields.
        ("level:error", eq("level", "error")),
        ("service:order-service", eq("service", "order-service")),
        (
            "metadata.orderId:ORD-98765",
            eq("metadata.orderId", "ORD-98765"),
        ),
        ("_x-y.z:1", eq("_x-y.z", "1")),
        ("service:\"order service\"", eq("service", "order service")),
        ("url:\"http://x/y\"", eq("url", "http://x/y")),
        ("url:http://x/y", eq("url", "http://x/y")),
        ("level:AND", eq("level", "AND")),
        ("count:-1", eq("count", "-1")),
        ("op:=x", eq("op", "=x")),
        ("service:pay*", prefix("service", "pay")),
        ("service:p*y", eq("service", "p*y")),
        ("AND:x", eq("AND", "x")),
        // Comparisons.
        ("level:>=warn", cmp("level", Comparison::Ge, "warn")),
        (
            "metadata.retryCount:>1",
            cmp("metadata.retryCount", Comparison::Gt, "1"),
        ),
        ("n:<5", cmp("n", Comparison::Lt, "5")),
        ("n:<=5", cmp("n", Comparison::Le, "5")),
        ("n:>5*", cmp("n", Comparison::Gt, "5*")),
        (
            "ts:>\"2024-01-01 10:00\"",
            cmp("ts", Comparison::Gt, "2024-01-01 10:00"),
        ),
        // Ranges.
        ("n:[1 TO 5]", range("n", Some("1"), Some("5"))),
        (
            "metadata.latency:[100 TO *]",
            range("metadata.latency", Some("100"), None),
        ),
        ("n:[* TO 5]", range("n", None, Some("5"))),
        ("n:[* TO *]", range("n", None, None)),
        ("n:[  1   TO   5  ]", range("n", Some("1"), Some("5"))),
        ("ts:[\"a b\" TO \"*\"]", range("ts", Some("a b"), Some("*"))),
        (
            "(n:[1 TO 5]) x",
            and(vec![range("n", Some("1"), Some("5")), text("x")]),
        ),
        // Implicit and explicit AND, flattening.
        ("a b", and(vec![text("a"), text("b")])),
        ("a b c", and(vec![text("a"), text("b"), text("c")])),
        ("a AND b", and(vec![text("a"), text("b")])),
        ("a AND b c", and(vec![text("a"), text("b"), text("c")])),
        (
            "(a b) (c d)",
            and(vec![text("a"), text("b"), text("c"), text("d")]),
        ),
        (
            "a b and c",
            and(vec![text("a"), text("b"), text("and"), text("c")]),
        ),
        ("a or b", and(vec![text("a"), text("or"), text("b")])),
        ("a(b)", and(vec![text("a"), text("b")])),
        ("\"x\"(y)", and(vec![phrase("x"), text("y")])),
        // OR and precedence.
        ("a OR b", or(vec![text("a"), text("b")])),
        ("a OR b OR c", or(vec![text("a"), text("b"), text("c")])),
        ("(a OR b) OR c", or(vec![text("a"), text("b"), text("c")])),
        (
            "a OR b c",
            or(vec![text("a"), and(vec![text("b"), text("c")])]),
        ),
        (
            "a b OR c",
            or(vec![and(vec![text("a"), text("b")]), text("c")]),
        ),
        (
            "a AND b OR c AND d",
            or(vec![
                and(vec![text("a"), text("b")]),
                and(vec![text("c"), text("d")]),
            ]),
        ),
        (
            "(a OR b) c",
            and(vec![or(vec![text("a"), text("b")]), text("c")]),
        ),
        (
            "level:error (service:pay* OR service:\"order service\")",
            and(vec![
                eq("level", "error"),
                or(vec![
                    prefix("service", "pay"),
                    eq("service", "order service"),
                ]),
            ]),
        ),
        // NOT and '-'.
        ("NOT a", not(text("a"))),
        ("-a", not(text("a"))),
        ("NOT a b", and(vec![not(text("a")), text("b")])),
        ("a OR NOT b", or(vec![text("a"), not(text("b"))])),
        ("a AND NOT b", and(vec![text("a"), not(text("b"))])),
        ("NOT (a OR b)", not(or(vec![text("a"), text("b")]))),
        ("-(a b)", not(and(vec![text("a"), text("b")]))),
        ("NOT NOT a", text("a")),
        ("--a", text("a")),
        ("NOT -a", text("a")),
        ("NOT NOT NOT a", not(text("a"))),
        ("NOT(a)", not(text("a"))),
        ("-level:debug", not(eq("level", "debug"))),
        ("-\"x y\"", not(phrase("x y"))),
        ("-*", not(Query::All)),
        ("-connect*", not(text_prefix("connect"))),
        ("a -b", and(vec![text("a"), not(text("b"))])),
        ("a-b", text("a-b")),
        ("(-a)", not(text("a"))),
        // '*' normalisation.
        ("a *", text("a")),
        ("* -a", not(text("a"))),
        ("a OR *", Query::All),
    ];
    for (input, expected) in cases {
        check(input, expected);
    }
}

#[test]
fn reports_errors() {
    let cases: Vec<(&str, usize, &str)> = vec![
        ("(a", 0, "unclosed '('"),
        ("x (a OR (b c)", 2, "unclosed '('"),
        ("(", 0, "unclosed '('"),
        ("a)", 1, "unmatched ')'"),
        (")", 0, "unmatched ')'"),
        ("(a))", 3, "unmatched ')'"),
        ("()", 0, "empty parentheses"),
        ("a ()", 2, "empty parentheses"),
        ("\"abc", 0, "unterminated quote"),
        ("a \"b c", 2, "unterminated quote"),
        ("a \"b\\\"", 2, "unterminated quote"),
        ("\"b\\", 0, "unterminated quote"),
        ("s:\"x", 2, "unterminated quote"),
        ("\"\"", 0, "empty phrase"),
        ("\"a\"b", 3, "after closing quote"),
        ("a AND", 2, "'AND' must be followed by a term"),
        ("a AND )", 2, "'AND' must be followed by a term"),
        ("a AND OR b", 2, "'AND' must be followed by a term"),
        ("OR b", 0, "'OR' must be preceded by a term"),
        ("AND b", 0, "'AND' must be preceded by a term"),
        ("(OR b)", 1, "'OR' must be preceded by a term"),
        ("a OR", 2, "'OR' must be followed by a term"),
        ("a OR OR b", 2, "'OR' must be followed by a term"),
        ("NOT", 0, "'NOT' must be followed by a term"),
        ("a NOT", 2, "'NOT' must be followed by a term"),
        ("NOT AND a", 0, "'NOT' must be followed by a term"),
        ("-", 0, "'-' must be immediately followed by a term"),
        ("- a", 0, "'-' must be immediately followed by a term"),
        ("a -", 2, "'-' must be immediately followed by a term"),
        ("(-)", 1, "'-' must be immediately followed by a term"),
        ("-AND", 0, "'-' must be followed by a term"),
        ("service:", 7, "empty value for field 'service'"),
        ("service: x", 7, "empty value"),
        ("(service:)", 8, "empty value"),
        ("service:\"\"", 7, "empty value"),
        (":foo", 0, "empty field name"),
        ("a :foo", 2, "empty field name"),
        ("1abc:x", 0, "invalid field name '1abc'"),
        ("é:x", 0, "invalid field name"),
        ("a*:x", 0, "invalid field name"),
        ("field:>", 6, "missing value after '>'"),
        ("field:>=", 6, "missing value after '>='"),
        ("field:< x", 6, "missing value after '<'"),
        ("field:<=\"\"", 6, "missing value after '<='"),
        ("field:>\"x", 7, "unterminated quote"),
        ("field:*", 6, "cannot be just '*'"),
        ("field:pay**", 6, "single trailing '*'"),
        ("connect**", 0, "single trailing '*'"),
        ("**", 0, "single trailing '*'"),
        ("n:[1 TO 5", 2, "unterminated range"),
        ("n:[1 TO", 2, "unterminated range"),
        ("n:[", 2, "unterminated range"),
        ("n:[1", 2, "unterminated range"),
        ("n:[1 5]", 5, "expected 'TO'"),
        ("n:[1 TOO 5]", 5, "expected 'TO'"),
        ("n:[1 TO 5 6]", 10, "expected ']'"),
        ("n:[]", 3, "expected a range bound"),
        ("n:[1 TO ]", 8, "expected a range bound"),
        ("n:[1 TO 5]x", 10, "after ']'"),
        ("n:[\"1 TO 5]", 3, "unterminated quote"),
    ];
    for (input, position, message) in cases {
        match parse(input) {
            Err(err) => {
                assert_eq!(err.position, position, "input: {input:?}, error: {err}");
                assert!(
                    err.message.contains(message),
                    "input: {input:?}: {:?} does not contain {message:?}",
                    err.message
                );
            }
            Ok(query) => panic!("input {input:?} parsed as {query:?}, expected an error"),
        }
    }
}

#[test]
fn error_display_includes_position() {
    let err = ParseError::new(3, "unterminated quote");
    assert_eq!(err.to_string(), "unterminated quote at position 3");
}

#[test]
fn nesting_depth_is_capped() {
    let ok = format!("{}a{}", "(".repeat(64), ")".repeat(64));
    check(&ok, text("a"));

    let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
    match parse(&deep) {
        Err(err) => {
            assert_eq!(err.position, 64);
            assert!(err.message.contains("nested too deeply"), "{err}");
        }
        Ok(query) => panic!("deep nesting parsed as {query:?}"),
    }
}

#[test]
fn long_inputs_do_not_overflow() {
    check(&format!("{}a", "NOT ".repeat(100_001)), not(text("a")));
    check(&format!("{}a", "-".repeat(100_000)), text("a"));

    let words = "ab ".repeat(50_000);
    match parse(&words) {
        Ok(Query::And(items)) => assert_eq!(items.len(), 50_000),
        other => panic!("unexpected result {other:?}"),
    }

    let ors = ["x"; 10_000].join(" OR ");
    match parse(&ors) {
        Ok(Query::Or(items)) => assert_eq!(items.len(), 10_000),
        other => panic!("unexpected result {other:?}"),
    }
}

/// Minimal xorshift64 generator, so the randomized test needs no external crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        // Truncation is fine: only the low bits matter for a small bound.
        (self.next() % bound as u64) as usize
    }
}

#[test]
fn never_panics_on_random_input() {
    const ALPHABET: &[&str] = &[
        "a", "b", "(", ")", "\"", ":", "*", ">", "<", "=", "-", "NOT", "AND", "OR", "\\", " ", " ",
        "é", "[", "]", "TO", "f:", "\u{3000}",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..20_000 {
        let len = rng.below(16);
        let input: String = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        match parse(&input) {
            Ok(_) => parsed += 1,
            Err(err) => {
                assert!(err.position <= input.len(), "input {input:?}: {err}");
                assert!(
                    input.is_char_boundary(err.position),
                    "input {input:?}: {err}"
                );
                assert!(!err.message.is_empty(), "input {input:?}");
            }
        }
    }
    // Sanity check that the generator exercises both outcomes.
    assert!(parsed > 100, "only {parsed} inputs parsed");
}
