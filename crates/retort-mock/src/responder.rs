//! The mock's default answers: deterministic text derived from a hash of the request.
//!
//! The same conversation and seed always give the same answer. A request whose last user
//! message asks for a score (the words score, rate, rating or grade) is answered
//! `Score: N` with N in 1..=5; a request with a JSON schema is answered with a small JSON
//! instance of the schema; anything else with `Answer <hash8>: ` and a few words.

use retort_backends::scripted::{fnv1a, shape_choice};
use retort_core::{ChatRequest, Choice, Role};
use serde_json::{Map, Value};

const WORDS: [&str; 64] = [
    "alpha", "amber", "anchor", "apple", "arrow", "autumn", "basil", "beacon", "birch", "bloom", "breeze", "bridge", "canyon", "cedar",
    "cinder", "clover", "comet", "coral", "crane", "crystal", "delta", "dune", "ember", "falcon", "fern", "field", "flint", "forest",
    "garnet", "glacier", "harbor", "hazel", "horizon", "island", "ivory", "jasper", "juniper", "lagoon", "lantern", "maple", "meadow",
    "mesa", "nectar", "oasis", "ocean", "orchid", "pebble", "pine", "prairie", "quartz", "raven", "reef", "river", "sable", "sierra",
    "spruce", "summit", "thistle", "tundra", "valley", "willow", "winter", "yarrow", "zephyr",
];

/// SplitMix64: a fast, well-mixed step for deriving many values from one hash.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash of the conversation (roles and contents), independent of sampling parameters.
pub fn conversation_hash(request: &ChatRequest) -> u64 {
    let mut hash = 0u64;
    for message in &request.messages {
        let part = fnv1a(message.content.as_bytes()) ^ (message.role as u64).wrapping_mul(0x100_0000_01b3);
        hash = splitmix(&mut (hash ^ part));
    }
    hash
}

/// Whether the text asks for a score: it contains the word score, rate, rating or grade.
pub fn asks_for_score(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| ["score", "rate", "rating", "grade"].iter().any(|wanted| word.eq_ignore_ascii_case(wanted)))
}

/// The raw answer (before stop, max_tokens and logprobs are applied) for one sample.
pub fn answer_text(request: &ChatRequest, conversation: u64, sample_seed: u64) -> String {
    let mut state = conversation ^ sample_seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let hash = splitmix(&mut state);
    if let Some(schema) = &request.json_schema {
        return fake_instance(schema, &mut state, 0).to_string();
    }
    let last_user = request.messages.iter().rev().find(|message| message.role == Role::User);
    if last_user.is_some_and(|message| asks_for_score(&message.content)) {
        return format!("Score: {}", 1 + hash % 5);
    }
    let count = 8 + (hash % 8) as usize;
    let mut text = String::with_capacity(16 + count * 8);
    text.push_str("Answer ");
    text.push_str(&format!("{:08x}", hash >> 32));
    text.push(':');
    for _ in 0..count {
        text.push(' ');
        text.push_str(WORDS[(splitmix(&mut state) % WORDS.len() as u64) as usize]);
    }
    text.push('.');
    text
}

/// The default choices for a request: `n` samples with seeds `seed`, `seed+1`, ...
pub fn default_choices(request: &ChatRequest) -> Vec<Choice> {
    let conversation = conversation_hash(request);
    let seed = request.params.seed.unwrap_or(0);
    (0..u64::from(request.params.n.max(1)))
        .map(|sample| {
            let text = answer_text(request, conversation, seed.wrapping_add(sample));
            shape_choice(&text, &request.params, None, Vec::new())
        })
        .collect()
}

/// A small JSON value that satisfies common schemas (types, properties, items, enum,
/// const, anyOf/oneOf, minimum/maximum, minItems), chosen deterministically from `state`.
pub fn fake_instance(schema: &Value, state: &mut u64, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(constant) = schema.get("const") {
        return constant.clone();
    }
    if let Some(Value::Array(options)) = schema.get("enum") {
        if !options.is_empty() {
            return options[(splitmix(state) % options.len() as u64) as usize].clone();
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(options)) = schema.get(key) {
            if let Some(first) = options.iter().find(|option| option.get("type") != Some(&Value::from("null"))) {
                return fake_instance(first, state, depth + 1);
            }
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|kind| *kind != "null").unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match kind {
        "object" => {
            let mut object = Map::new();
            if let Some(Value::Object(properties)) = schema.get("properties") {
                for (name, property) in properties {
                    object.insert(name.clone(), fake_instance(property, state, depth + 1));
                }
            }
            Value::Object(object)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1).max(1);
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            Value::Array((0..min.min(16)).map(|_| fake_instance(&items, state, depth + 1)).collect())
        }
        "integer" => {
            let low = schema.get("minimum").and_then(Value::as_i64).unwrap_or(1);
            let high = schema.get("maximum").and_then(Value::as_i64).unwrap_or(low.max(1) + 4).max(low);
            Value::from(low + (splitmix(state) % (high - low + 1) as u64) as i64)
        }
        "number" => {
            let low = schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.0);
            let high = schema.get("maximum").and_then(Value::as_f64).unwrap_or(low + 1.0).max(low);
            let fraction = (splitmix(state) % 1000) as f64 / 1000.0;
            Value::from(low + (high - low) * fraction)
        }
        "boolean" => Value::Bool(splitmix(state) % 2 == 0),
        "null" => Value::Null,
        _ => Value::from(format!("{} {}", WORDS[(splitmix(state) % 64) as usize], WORDS[(splitmix(state) % 64) as usize])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retort_core::{FinishReason, Message};
    use serde_json::json;

    #[test]
    fn answers_are_deterministic_and_depend_on_conversation_and_seed() {
        let mut request = ChatRequest::from_prompt("Tell me about rivers");
        request.params.seed = Some(9);
        request.params.n = 3;
        let first = default_choices(&request);
        assert_eq!(first, default_choices(&request));
        assert_eq!(first.len(), 3);
        assert_ne!(first[0].text, first[1].text);
        assert!(first[0].text.starts_with("Answer ") && first[0].text.ends_with('.'));
        let words = first[0].text.split_whitespace().count();
        assert!((10..=17).contains(&words), "{words}");
        let mut other = request.clone();
        other.messages[0] = Message::user("Tell me about lakes");
        assert_ne!(default_choices(&other)[0].text, first[0].text);
    }

    #[test]
    fn score_questions_get_scores_in_range() {
        let cases = [("Please rate this answer", true), ("Score it from 1 to 5", true), ("generate a poem", false), ("underrated", false)];
        for (prompt, scored) in cases {
            assert_eq!(asks_for_score(prompt), scored, "{prompt}");
        }
        for seed in 0..20 {
            let mut request = ChatRequest::from_prompt("Rate the response");
            request.params.seed = Some(seed);
            let text = &default_choices(&request)[0].text;
            let score: u32 = text.strip_prefix("Score: ").expect(text).parse().unwrap();
            assert!((1..=5).contains(&score));
        }
    }

    #[test]
    fn schemas_get_matching_instances() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "score": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "kind": {"enum": ["a", "b"]},
                "ok": {"type": ["boolean", "null"]}
            },
            "required": ["name", "score"]
        });
        let mut request = ChatRequest::from_prompt("give json");
        request.json_schema = Some(schema);
        let value: Value = serde_json::from_str(&default_choices(&request)[0].text).unwrap();
        assert!(value["name"].is_string());
        assert!((1..=5).contains(&value["score"].as_i64().unwrap()));
        assert_eq!(value["tags"].as_array().unwrap().len(), 2);
        assert!(["a", "b"].contains(&value["kind"].as_str().unwrap()));
        assert!(value["ok"].is_boolean());
    }

    #[test]
    fn sampling_parameters_shape_default_answers() {
        let mut request = ChatRequest::from_prompt("hello");
        request.params.max_tokens = Some(2);
        request.params.logprobs = Some(1);
        let choice = default_choices(&request).remove(0);
        assert_eq!(choice.finish_reason, FinishReason::Length);
        assert_eq!(choice.text.split_whitespace().count(), 2);
        assert_eq!(choice.logprobs.unwrap().len(), 2);
    }
}
