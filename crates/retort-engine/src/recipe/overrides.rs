//! `--set path=value` overrides, applied to the recipe's YAML before it is read.

use serde_yaml::{Mapping, Value};

use crate::error::Diagnostic;

/// One segment of an override path: a map key or a list index.
#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(open) => (&part[..open], &part[open..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_string()));
        }
        while let Some(stripped) = rest.strip_prefix('[') {
            let close = stripped.find(']').ok_or_else(|| format!("`{path}`: missing `]`"))?;
            let index = stripped[..close]
                .parse::<usize>()
                .map_err(|_| format!("`{path}`: expected a list index, found `{}`", &stripped[..close]))?;
            segments.push(Segment::Index(index));
            rest = &stripped[close + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("`{path}`: unexpected `{rest}`"));
        }
    }
    if segments.is_empty() {
        return Err("an empty path".to_string());
    }
    Ok(segments)
}

/// Applies `PATH=VALUE` (the value read as YAML) to a recipe document.
pub(crate) fn apply(document: &mut Value, assignment: &str) -> Result<(), Diagnostic> {
    let (path, value) =
        assignment.split_once('=').ok_or_else(|| Diagnostic::new("--set", format!("expected PATH=VALUE, found `{assignment}`")))?;
    let segments = parse_path(path.trim()).map_err(|message| Diagnostic::new("--set", message))?;
    let value: Value = serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    let mut node = document;
    for (position, segment) in segments.iter().enumerate() {
        let last = position + 1 == segments.len();
        node = match segment {
            Segment::Key(key) => {
                if !node.is_mapping() {
                    *node = Value::Mapping(Mapping::new());
                }
                let map = node.as_mapping_mut().expect("just made a mapping");
                let key = Value::String(key.clone());
                if !map.contains_key(&key) {
                    map.insert(key.clone(), Value::Null);
                }
                map.get_mut(&key).expect("just inserted")
            }
            Segment::Index(index) => {
                let Some(list) = node.as_sequence_mut() else {
                    return Err(Diagnostic::new("--set", format!("`{path}`: not a list at [{index}]")));
                };
                let length = list.len();
                list.get_mut(*index)
                    .ok_or_else(|| Diagnostic::new("--set", format!("`{path}`: index {index} is out of range for a list of {length}")))?
            }
        };
        if last {
            *node = value.clone();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_reach_nested_places() {
        let mut document: Value = serde_yaml::from_str("steps:\n  - load: {path: a.jsonl}\nvars: {}\n").unwrap();
        apply(&mut document, "steps[0].load.path=b.jsonl").unwrap();
        apply(&mut document, "vars.rounds=3").unwrap();
        apply(&mut document, "llm.model=m").unwrap();
        let text = serde_yaml::to_string(&document).unwrap();
        assert!(text.contains("path: b.jsonl"), "{text}");
        assert!(text.contains("rounds: 3"), "{text}");
        assert!(text.contains("model: m"), "{text}");
        assert!(apply(&mut document, "steps[4].load.path=x").is_err());
        assert!(apply(&mut document, "novalue").is_err());
    }
}
