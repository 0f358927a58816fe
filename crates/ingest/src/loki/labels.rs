//! Prometheus-style label sets, `{app="api", env="prod"}`, as Loki's
//! protobuf streams and legacy JSON carry them.

/// Parses `{name="value", …}` (values with `\"`, `\\` and `\n` escapes)
/// into pairs, in order.
pub(super) fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .ok_or_else(|| format!("labels {text:?} are not enclosed in {{ }}"))?;
    let mut pairs = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("label without `=` in {text:?}"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(format!("invalid label name {name:?} in {text:?}"));
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of label {name:?} is not quoted in {text:?}"))?;
        let (value, after) = quoted(after)
            .ok_or_else(|| format!("the value of label {name:?} is not closed in {text:?}"))?;
        pairs.push((name.to_owned(), value));
        rest = after.trim_start();
        rest = match rest.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(format!("expected `,` between labels in {text:?}")),
        };
    }
    Ok(pairs)
}

/// The text up to the closing quote, unescaped, and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_parse_with_escapes() {
        let pairs = parse(r#"{app="api", msg="say \"hi\"\n", k8s.ns="a,b"}"#);
        assert_eq!(
            pairs,
            Ok(vec![
                ("app".into(), "api".into()),
                ("msg".into(), "say \"hi\"\n".into()),
                ("k8s.ns".into(), "a,b".into()),
            ])
        );
        assert_eq!(parse("{}"), Ok(vec![]));
        assert!(parse(r#"{app="api"#).is_err());
        assert!(parse(r#"app="api""#).is_err());
        assert!(parse(r#"{app=api}"#).is_err());
        assert!(parse(r#"{a="1" b="2"}"#).is_err());
    }
}
