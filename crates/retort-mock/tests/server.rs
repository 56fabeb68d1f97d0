//! The mock server over real HTTP: routes, answers, faults, the request log and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use retort_backends::ScriptRule;
use retort_mock::{Faults, MockConfig, MockServer};
use serde_json::{json, Value};

async fn post(client: &reqwest::Client, server: &MockServer, body: &Value) -> (u16, Value) {
    let response = client.post(format!("{}/chat/completions", server.url())).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test]
async fn health_models_and_deterministic_answers() {
    let server = MockServer::start(MockConfig { model: "m1".into(), ..MockConfig::default() }).await.unwrap();
    let client = reqwest::Client::new();
    let health = client.get(format!("http://{}/health", server.addr())).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let models: Value = client.get(format!("{}/models", server.url())).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["data"][0]["id"], "m1");

    let body = json!({"model": "asked", "messages": [{"role": "user", "content": "hi"}], "seed": 3, "n": 2,
                      "logprobs": true, "top_logprobs": 2});
    let (status, first) = post(&client, &server, &body).await;
    assert_eq!(status, 200);
    let (_, second) = post(&client, &server, &body).await;
    assert_eq!(first["choices"], second["choices"]);
    assert_eq!(first["model"], "asked");
    assert_eq!(first["choices"].as_array().unwrap().len(), 2);
    assert_ne!(first["choices"][0]["message"]["content"], first["choices"][1]["message"]["content"]);
    let tokens = first["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert!(!tokens.is_empty() && tokens[0]["top_logprobs"].as_array().unwrap().len() == 2);
    let words = first["choices"][0]["message"]["content"].as_str().unwrap().split_whitespace().count() as u64;
    assert!(first["usage"]["completion_tokens"].as_u64().unwrap() >= words);

    let (status, bad) = post(&client, &server, &json!({"nope": 1})).await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"].as_str().unwrap().contains("expected a chat-completions request"));

    let logged = server.requests();
    assert_eq!(logged.len(), 3);
    assert_eq!(logged[0].key, logged[1].key, "identical bodies, identical keys");
    assert_ne!(logged[0].key, logged[2].key);
    assert_eq!((logged[0].seq, logged[0].last_user.as_str(), logged[0].status), (1, "hi", 200));
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn rules_answer_first_and_faults_follow_their_schedule() {
    let server = MockServer::start(MockConfig {
        rules: vec![ScriptRule { when: "capital of (\\w+)".into(), reply: Some("The capital of $1.".into()), ..ScriptRule::default() }],
        faults: Faults { fail_every: Some(3), fail_status: 503, retry_after_s: Some(2.0), ..Faults::default() },
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let body = json!({"messages": [{"role": "user", "content": "capital of France"}], "stop": ["."]});
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = client.post(format!("{}/chat/completions", server.url())).json(&body).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 503 {
            assert_eq!(response.headers()["retry-after"], "2");
        } else {
            let value: Value = response.json().await.unwrap();
            assert_eq!(value["choices"][0]["message"]["content"], "The capital of France");
        }
    }
    assert_eq!(statuses, [200, 200, 503, 200, 200, 503]);
    server.set_faults(Faults { drop_first: 1, ..Faults::default() });
    let dropped = client.post(format!("{}/chat/completions", server.url())).json(&body).send().await;
    assert!(dropped.is_err(), "the connection is dropped without an answer");
    let (status, _) = post(&client, &server, &body).await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn log_file_gets_one_flushed_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.log");
    let server = MockServer::start(MockConfig { log_file: Some(path.clone()), record: false, ..MockConfig::default() }).await.unwrap();
    let client = reqwest::Client::new();
    for prompt in ["one", "two", "one"] {
        post(&client, &server, &json!({"messages": [{"role": "user", "content": prompt}]})).await;
    }
    assert!(server.requests().is_empty(), "record is off");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|line| line.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0][0], "1");
    assert_eq!(lines[0][1], lines[2][1]);
    assert_ne!(lines[0][1], lines[1][1]);
    assert_eq!((lines[1][2], lines[1][3]), ("200", "\"two\""));
}

#[test]
fn binary_prints_its_url_first_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort-mock"))
        .args(["--port", "0", "--threads", "1", "--latency-ms", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("listening on ").expect(&first).to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"), "{url}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer: Value = runtime.block_on(async {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let body = json!({"messages": [{"role": "user", "content": "Rate this from 1 to 5"}]});
        client.post(format!("{url}/chat/completions")).json(&body).send().await.unwrap().json().await.unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("Score: "), "{text}");
}
