//! Tests of the local backend against the default model (SmolLM2-135M-Instruct).

mod common;

use common::{backend, backend_with, config};
use retort_core::{Backend, BackendErrorKind, ChatRequest, FinishReason, Message, SamplingParams, ScoreRequest};
use retort_llama::{LocalBackend, LocalConfig};
use serde_json::{json, Value};

fn greedy(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(prompt)],
        params: SamplingParams { temperature: Some(0.0), max_tokens: Some(max_tokens), ..SamplingParams::default() },
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn renders_the_models_chat_template() {
    let backend = backend();
    let text = backend.render(&[Message::system("Be brief."), Message::user("Hi there")], true).await.unwrap();
    assert_eq!(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
}

#[tokio::test]
async fn greedy_chat_is_deterministic_and_counts_tokens() {
    let backend = backend();
    let request = greedy("What is the capital of France?", 12);
    let first = backend.chat(&request).await.unwrap();
    let second = backend.chat(&request).await.unwrap();
    assert_eq!(first.choices.len(), 1);
    assert_eq!(first.choices[0].text, second.choices[0].text);
    assert!(!first.choices[0].text.trim().is_empty());
    assert!(first.usage.prompt_tokens > 5, "{:?}", first.usage);
    assert!((1..=12).contains(&first.usage.completion_tokens), "{:?}", first.usage);
    assert_eq!(first.model, "smollm2-135m");
    assert_eq!(backend.kind(), "local");
    assert_eq!(backend.in_flight(), 0);
    if first.usage.completion_tokens == 12 {
        assert_eq!(first.choices[0].finish_reason, FinishReason::Length);
    }
}

#[tokio::test]
async fn stop_strings_end_the_answer_before_them() {
    let backend = backend();
    let request = greedy("Count from 1 to 20, separated by commas.", 40);
    let full = backend.chat(&request).await.unwrap().choices.remove(0).text;
    // Take a stop string from the middle of the greedy answer: the answer must end before it.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() >= 4, "expected a longer answer, found {full:?}");
    let stop = words[words.len() / 2].to_string();
    let cut = full.find(&stop).unwrap();
    let mut stopped = request.clone();
    stopped.params.stop = vec![stop.clone()];
    let choice = backend.chat(&stopped).await.unwrap().choices.remove(0);
    assert_eq!(choice.text, full[..cut], "stop {stop:?}");
    assert_eq!(choice.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn json_schema_output_parses_and_follows_the_schema() {
    let backend = backend();
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "population": {"type": "integer"},
            "capital": {"type": "boolean"},
            "continent": {"enum": ["Europe", "Asia", "Africa"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 2}
        },
        "required": ["city", "population", "capital", "continent", "tags"],
        "additionalProperties": false
    });
    for seed in [1, 2] {
        let request = ChatRequest {
            messages: vec![Message::user("Describe Paris as JSON.")],
            params: SamplingParams { temperature: Some(0.7), seed: Some(seed), max_tokens: Some(120), ..SamplingParams::default() },
            json_schema: Some(schema.clone()),
            ..ChatRequest::default()
        };
        let choice = backend.chat(&request).await.unwrap().choices.remove(0);
        assert_eq!(choice.finish_reason, FinishReason::Stop, "{:?}", choice.text);
        let value: Value = serde_json::from_str(&choice.text).unwrap_or_else(|error| panic!("not JSON ({error}): {:?}", choice.text));
        assert!(value["city"].is_string(), "{value}");
        assert!(value["population"].is_i64() || value["population"].is_u64(), "{value}");
        assert!(value["capital"].is_boolean(), "{value}");
        assert!(["Europe", "Asia", "Africa"].contains(&value["continent"].as_str().unwrap()), "{value}");
        assert!(value["tags"].as_array().is_some_and(|tags| tags.len() <= 2), "{value}");
    }
}

/// The grammar is asked about the freely picked token before the whole row (llama.cpp's
/// server's order); for greedy choice that gives the tokens the grammar-first order gives.
#[tokio::test]
async fn greedy_constrained_answers_are_those_of_the_grammar_first_order() {
    let schema = json!({
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 24}, "year": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["old", "new", "big"]}}},
        "required": ["name", "year", "tags"]
    });
    let mut first = common::worker(false);
    first.env.push((retort_llama::GRAMMAR_FIRST_ENV.to_string(), "1".to_string()));
    let grammar_first = LocalBackend::with_worker(config(), first).unwrap();
    let picked_first = backend();
    for prompt in ["Describe the Eiffel Tower as JSON.", "A famous ship, as JSON.", "Write JSON about a river."] {
        let request = ChatRequest {
            messages: vec![Message::user(prompt)],
            params: SamplingParams { temperature: Some(0.0), max_tokens: Some(60), ..SamplingParams::default() },
            json_schema: Some(schema.clone()),
            ..ChatRequest::default()
        };
        let expected = grammar_first.chat(&request).await.unwrap().choices.remove(0).text;
        let found = picked_first.chat(&request).await.unwrap().choices.remove(0).text;
        assert_eq!(found, expected, "{prompt}");
        assert!(expected.starts_with('{'), "{expected:?}");
    }
}

#[tokio::test]
async fn logprobs_come_with_generated_tokens() {
    let backend = backend();
    let mut request = greedy("Name a colour.", 8);
    request.params.logprobs = Some(3);
    let response = backend.chat(&request).await.unwrap();
    let choice = &response.choices[0];
    let logprobs = choice.logprobs.as_ref().expect("logprobs were asked for");
    assert_eq!(logprobs.len() as u64, response.usage.completion_tokens);
    let joined: String = logprobs.iter().map(|token| token.token.as_str()).collect();
    assert_eq!(joined, choice.text);
    for token in logprobs {
        assert!(token.logprob <= 0.0, "{token:?}");
        assert_eq!(token.top.len(), 3, "{token:?}");
        assert!(token.top.windows(2).all(|pair| pair[0].1 >= pair[1].1), "{token:?}");
        // Greedy decoding picks the most likely token.
        assert_eq!(token.top[0].0, token.token);
        assert!((token.top[0].1 - token.logprob).abs() < 1e-9, "{token:?}");
    }
    let plain = backend.chat(&greedy("Name a colour.", 8)).await.unwrap();
    assert!(plain.choices[0].logprobs.is_none());
}

#[tokio::test]
async fn score_orders_likely_above_unlikely_continuations() {
    let backend = backend();
    let messages = vec![Message::user("What is the capital of France?")];
    let cases = [("The capital of France is Paris.", "Purple bananas sing loudly under the ocean."), ("Paris", "Tuesday")];
    for (likely, unlikely) in cases {
        let score = |continuation: &str| {
            let request = ScoreRequest::chat(messages.clone(), continuation.to_string());
            let backend = &backend;
            async move { backend.score(&request).await.unwrap() }
        };
        let (likely_score, unlikely_score) = (score(likely).await, score(unlikely).await);
        let text: String = likely_score.tokens.iter().map(|token| token.token.as_str()).collect();
        assert_eq!(text, likely);
        assert!(likely_score.tokens.iter().all(|token| token.logprob <= 0.0));
        assert!(
            likely_score.mean() > unlikely_score.mean(),
            "{likely:?} {} vs {unlikely:?} {}",
            likely_score.mean(),
            unlikely_score.mean()
        );
    }
    let empty = backend.score(&ScoreRequest::chat(messages, String::new())).await.unwrap();
    assert!(empty.tokens.is_empty());
}

#[tokio::test]
async fn n_gives_that_many_choices_and_capabilities_say_so() {
    let backend = backend();
    let mut request = greedy("Say a word.", 4);
    request.params.n = 3;
    request.params.temperature = Some(1.0);
    let response = backend.chat(&request).await.unwrap();
    assert_eq!(response.choices.len(), 3);
    let capabilities = backend.capabilities();
    assert!(capabilities.n && capabilities.logprobs && capabilities.score && capabilities.json_schema);
    assert!(!capabilities.tools);
}

#[tokio::test]
async fn concurrent_requests_join_one_batch() {
    let backend = backend();
    let prompts = ["Name a fruit.", "Name a city.", "Name an animal.", "Name a colour.", "Name a planet.", "Name a tree."];
    let requests: Vec<ChatRequest> = prompts.iter().map(|prompt| greedy(prompt, 6)).collect();
    let answers = futures::future::join_all(requests.iter().map(|request| backend.chat(request))).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert!((1..=6).contains(&answer.usage.completion_tokens));
    }
    assert_eq!(backend.in_flight(), 0);
    assert_eq!(backend.worker_starts(), 1);
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_fails_only_that_request() {
    let backend = backend_with(LocalConfig { context_size: 64, ..config() }, false);
    let long = greedy(&"tell me a story about a dragon ".repeat(40), 4);
    let short = greedy("Hi", 4);
    let (long, short) = tokio::join!(backend.chat(&long), backend.chat(&short));
    let error = long.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::ContextLength, "{error}");
    assert!(!error.is_retryable());
    short.unwrap();
    assert_eq!(backend.worker_starts(), 1);
}

#[tokio::test]
async fn tools_are_unsupported() {
    let backend = backend();
    let mut request = greedy("Hi", 4);
    request.tools.push(retort_core::ToolSpec { name: "lookup".into(), description: String::new(), parameters: Value::Null });
    let error = backend.chat(&request).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Unsupported);
}

#[tokio::test]
async fn passes_the_backend_compliance_suite() {
    use retort_backends::compliance::{check_backend, ComplianceOptions};
    let backend = backend();
    let options = ComplianceOptions {
        failing: Some((greedy(&"a very long prompt ".repeat(200), 4), BackendErrorKind::ContextLength)),
        ..ComplianceOptions::default()
    };
    let report = check_backend(&backend, &options).await.unwrap_or_else(|failure| panic!("{failure}"));
    assert_eq!(report.skipped, [], "{report:?}");
    assert_eq!(report.passed.len(), 9, "{report:?}");
}

#[tokio::test]
async fn embeddings_are_unit_vectors_that_place_paraphrases_closer() {
    let backend = backend();
    let texts: Vec<String> = ["The cat sat on the mat.", "A cat was sitting on the mat.", "Quarterly revenue grew by five percent."]
        .iter()
        .map(|text| text.to_string())
        .collect();
    let vectors = backend.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|vector| vector.len() == vectors[0].len() && !vector.is_empty()));
    for vector in &vectors {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let (close, far) = (cosine(&vectors[0], &vectors[1]), cosine(&vectors[0], &vectors[2]));
    assert!(close > far, "paraphrase {close} vs unrelated {far}");
    // Embedding does not disturb chat.
    backend.chat(&greedy("Hi", 3)).await.unwrap();
}

/// A system prompt of about a hundred tokens, shared by the prefix tests' requests.
const RUBRIC: &str = "You are a careful grader. Read the question and the answer. Give one point for a correct \
    final answer, one point for clear steps, one point for brevity, one point for correct units, and one point for \
    politeness. Explain each point in one short sentence, then write the total as Score: N on the last line. Never \
    give more than five points and never fewer than zero.";

fn graded(question: &str, seed: u64) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system(RUBRIC), Message::user(question)],
        params: SamplingParams { temperature: Some(0.7), seed: Some(seed), max_tokens: Some(16), ..SamplingParams::default() },
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn the_n_samples_of_one_prompt_evaluate_it_once() {
    let backend = backend();
    backend.warm_up().await.unwrap();
    let mut request = graded("Question: 2 + 3? Answer: 5.", 11);
    request.params.n = 4;
    let before = backend.prompt_tokens_evaluated();
    let response = backend.chat(&request).await.unwrap();
    let evaluated = backend.prompt_tokens_evaluated() - before;
    let prompt = response.usage.prompt_tokens;
    assert_eq!(response.choices.len(), 4);
    assert!(prompt > 80, "{:?}", response.usage);
    // The first sample evaluates the prompt; each other copies it and evaluates its last token.
    assert!(evaluated >= prompt && evaluated <= prompt + 3, "{evaluated} prompt tokens evaluated for a prompt of {prompt} and 4 samples");

    let fresh = backend_with(LocalConfig { prefix_cache: false, ..config() }, false);
    fresh.chat(&request).await.unwrap();
    assert_eq!(fresh.prompt_tokens_evaluated(), 4 * prompt, "without the prefix cache every sample evaluates the prompt");
}

#[tokio::test]
async fn a_shared_prefix_is_reused_and_gives_the_answer_a_fresh_prompt_gives() {
    let question = graded("Question: 7 × 6? Answer: 42.", 5);
    // Fresh: the question on a new worker, nothing cached.
    let fresh = backend();
    let alone = fresh.chat(&question).await.unwrap();
    let fresh_evaluated = fresh.prompt_tokens_evaluated();
    assert_eq!(alone.usage.cached_tokens, 0, "{:?}", alone.usage);

    // Reused: another question with the same system prompt first, then the same question.
    let reused = backend();
    reused.chat(&graded("Question: 9 - 4? Answer: 5.", 3)).await.unwrap();
    let before = reused.prompt_tokens_evaluated();
    let again = reused.chat(&question).await.unwrap();
    let evaluated = reused.prompt_tokens_evaluated() - before;
    assert_eq!(again.usage.prompt_tokens, alone.usage.prompt_tokens);
    assert!(again.usage.cached_tokens > 80, "the rubric should come from the cache: {:?}", again.usage);
    assert_eq!(evaluated, again.usage.prompt_tokens - again.usage.cached_tokens);
    assert!(evaluated * 4 < fresh_evaluated, "{evaluated} evaluated with the prefix reused, {fresh_evaluated} fresh");
    assert_eq!(again.choices[0].text, alone.choices[0].text, "a reused prefix must give the fresh prompt's answer for the same seed");

    // The very same request again reuses all but the last token, and still gives the same answer.
    let third = reused.chat(&question).await.unwrap();
    assert_eq!(third.usage.cached_tokens, third.usage.prompt_tokens - 1, "{:?}", third.usage);
    assert_eq!(third.choices[0].text, alone.choices[0].text);
}

#[tokio::test]
async fn n_samples_match_single_requests_with_their_seeds() {
    // The samples of `n` take seeds seed, seed + 1, ...: each equals the single request with
    // that seed, the first of them evaluated fresh, the others from the cache it left.
    let mut request = graded("Question: 10 / 2? Answer: 5.", 21);
    request.params.n = 3;
    let shared = backend().chat(&request).await.unwrap();
    let one_at_a_time = backend_with(LocalConfig { max_sequences: 1, ..config() }, false);
    for (index, choice) in shared.choices.iter().enumerate() {
        let mut single = request.clone();
        single.params.n = 1;
        single.params.seed = Some(21 + index as u64);
        let alone = one_at_a_time.chat(&single).await.unwrap();
        assert_eq!(alone.usage.cached_tokens > 0, index > 0, "{:?}", alone.usage);
        assert_eq!(choice.text, alone.choices[0].text, "sample {index}");
    }
}

#[tokio::test]
async fn long_prompts_on_every_sequence_fit_beside_the_caches_kept() {
    // Four sequences of 512 tokens share one pool of 2,048 cells. Two waves of long, distinct
    // prompts: the second finds every sequence holding the first wave's cache, and must
    // overwrite it (or evict it) rather than run out of cells.
    let backend = backend();
    let long = |index: usize| {
        let filler: String = (0..60).map(|word| format!("w{index}x{word} ")).collect();
        ChatRequest {
            messages: vec![Message::user(format!("{filler}\nSay ok."))],
            params: SamplingParams { temperature: Some(0.0), max_tokens: Some(2), ..SamplingParams::default() },
            ..ChatRequest::default()
        }
    };
    let requests: Vec<ChatRequest> = (0..8).map(long).collect();
    let answers = futures::future::join_all(requests.iter().map(|request| backend.chat(request))).await;
    for answer in answers {
        let answer = answer.unwrap();
        assert!(answer.usage.prompt_tokens > 250, "{:?}", answer.usage);
        assert!(answer.usage.cached_tokens * 4 < answer.usage.prompt_tokens, "distinct prompts share little: {:?}", answer.usage);
    }
    assert_eq!(backend.worker_starts(), 1);
}
