//! Tools: calculator and date tables, SQLite, BM25 ranking, HTTP against a loopback server,
//! the simulated tool, registry validation and building from YAML configs.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use retort_agent::tools::calculator::{evaluate, format_number, Calculator};
use retort_agent::tools::datetime::{DateTimeConfig, DateTimeTool};
use retort_agent::tools::http::{HttpConfig, HttpTool};
use retort_agent::tools::search::{Bm25Search, SearchConfig, SearchDocument};
use retort_agent::tools::simulated::{SimulatedConfig, SimulatedTool};
use retort_agent::tools::sqlite::{SqliteConfig, SqliteTool};
use retort_agent::{BuildContext, CallStatus, Tool, ToolConfig, ToolRegistry};
use retort_core::Backend;
use serde_json::{json, Value};

#[test]
fn calculator_cases() {
    let ok: &[(&str, &str)] = &[
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("2 ^ 10", "1024"),
        ("2 ^ 3 ^ 2", "512"),
        ("-2 ^ 2", "-4"),
        ("2 ** -1", "0.5"),
        ("10 % 4", "2"),
        ("7 / 2", "3.5"),
        ("0.1 + 0.2", "0.3"),
        ("1 / 3", "0.333333333333"),
        ("sqrt(16) + abs(-3)", "7"),
        ("log(e)", "1"),
        ("log(8, 2)", "3"),
        ("log10(1000)", "3"),
        ("exp(0)", "1"),
        ("sin(0) + cos(0)", "1"),
        ("round(2.5)", "3"),
        ("round(3.14159, 2)", "3.14"),
        ("max(1, 5, 3) - min(4, 2)", "3"),
        ("2 * pi", "6.28318530718"),
        ("1_000 * 3", "3000"),
        ("1e3 + 1", "1001"),
        ("--3", "3"),
        ("3 × 4 ÷ 6", "2"),
        ("1e20 * 10", "1e21"),
    ];
    for (expression, want) in ok {
        let got = evaluate(expression).map(format_number);
        assert_eq!(got.as_deref(), Ok(*want), "{expression}");
    }
    let bad: &[(&str, &str)] = &[
        ("1 / 0", "division by zero"),
        ("5 % 0", "remainder by zero"),
        ("sqrt(-1)", "not a real number"),
        ("log(0)", "positive"),
        ("2 +", "ends where a number was expected"),
        ("(1 + 2", "expected `)`"),
        ("1 2", "unexpected number"),
        ("foo(1)", "unknown function"),
        ("x + 1", "unknown name"),
        ("__import__('os')", "unexpected character"),
        ("", "empty"),
        ("sqrt(1, 2)", "takes 1 argument"),
        ("(-8) ^ 0.5", "not a real number"),
        ("exp(1000)", "not a finite number"),
    ];
    for (expression, want) in bad {
        let err = evaluate(expression).unwrap_err();
        assert!(err.contains(want), "{expression}: {err}");
    }
    let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    assert!(evaluate(&deep).unwrap_err().contains("nests deeper"));
}

#[tokio::test]
async fn calculator_through_the_registry() {
    let registry = ToolRegistry::new().with(Arc::new(Calculator::default())).unwrap();
    let ok = registry.call_text("calculator", r#"{"expression": "6 * 7"}"#).await;
    assert_eq!((ok.observation.as_str(), ok.status), ("42", CallStatus::Ok));
    let rejected = registry.call_text("calculator", r#"{"expression": "1/0"}"#).await;
    assert_eq!(rejected.status, CallStatus::BadArguments);
    assert!(rejected.observation.contains("division by zero"), "{}", rejected.observation);
    let schema = registry.call_text("calculator", r#"{"expr": "1"}"#).await;
    assert_eq!(schema.status, CallStatus::BadArguments);
    assert!(schema.observation.contains("expression"), "{}", schema.observation);
    let not_json = registry.call_text("calculator", "{expression: 1}").await;
    assert_eq!(not_json.status, CallStatus::BadArguments);
    assert!(not_json.observation.contains("not valid JSON"), "{}", not_json.observation);
    let unknown = registry.call_text("calc", "{}").await;
    assert_eq!(unknown.status, CallStatus::UnknownTool);
    assert!(unknown.observation.contains("Available tools: calculator"), "{}", unknown.observation);
    assert_eq!(registry.names(), ["calculator"]);
}

#[tokio::test]
async fn datetime_cases() {
    let tool = DateTimeTool::new(&DateTimeConfig { name: None, today: Some("2024-05-01".into()) }).unwrap();
    let cases: Vec<(Value, Result<&str, &str>)> = vec![
        (json!({"operation": "add_days", "date": "2024-02-27", "days": 3}), Ok("2024-03-01 (Friday)")),
        (json!({"operation": "add_days", "date": "2023-02-27", "days": 3}), Ok("2023-03-02 (Thursday)")),
        (json!({"operation": "subtract_days", "date": "2024-01-01", "days": 1}), Ok("2023-12-31 (Sunday)")),
        (json!({"operation": "weekday", "date": "1969-07-20"}), Ok("Sunday")),
        (json!({"operation": "days_between", "date": "2024-01-01", "end_date": "2024-12-25"}), Ok("359")),
        (json!({"operation": "days_between", "date": "2024-03-01", "end_date": "2024-02-01"}), Ok("-29")),
        (json!({"operation": "add_months", "date": "2024-01-31", "months": 1}), Ok("2024-02-29 (Thursday)")),
        (json!({"operation": "add_months", "date": "2024-03-15", "months": -14}), Ok("2023-01-15 (Sunday)")),
        (json!({"operation": "today"}), Ok("2024-05-01 (Wednesday)")),
        (json!({"operation": "weekday", "date": "2024-02-30"}), Err("YYYY-MM-DD")),
        (json!({"operation": "add_days", "date": "2024-01-01"}), Err("needs `days`")),
        (json!({"operation": "days_between", "date": "2024-01-01"}), Err("needs `end_date`")),
    ];
    for (arguments, want) in cases {
        let got = tool.call(&arguments).await.map_err(|e| e.to_string());
        match want {
            Ok(text) => assert_eq!(got.as_deref(), Ok(text), "{arguments}"),
            Err(part) => assert!(got.as_ref().unwrap_err().contains(part), "{arguments}: {got:?}"),
        }
    }
    let calendar = tool.call(&json!({"operation": "calendar", "year": 2024, "month": 2})).await.unwrap();
    assert_eq!(
        calendar,
        "February 2024\nMo Tu We Th Fr Sa Su\n          1  2  3  4\n 5  6  7  8  9 10 11\n12 13 14 15 16 17 18\n19 20 21 22 23 24 25\n26 27 28 29"
    );
    let untimed = DateTimeTool::new(&DateTimeConfig::default()).unwrap();
    assert!(untimed.call(&json!({"operation": "today"})).await.is_err());
}

#[tokio::test]
async fn sqlite_tool_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::shop_db(dir.path());
    let tool =
        SqliteTool::new(&SqliteConfig { name: None, description: None, path: path.clone(), max_rows: 2, timeout_secs: 0.5 }).unwrap();
    assert!(tool.spec().description.contains("CREATE TABLE products"), "{}", tool.spec().description);
    let registry = ToolRegistry::new().with(Arc::new(tool)).unwrap();
    let out = registry.call("sql", &json!({"query": "SELECT name, price FROM products ORDER BY price DESC"})).await;
    assert_eq!(out.status, CallStatus::Ok);
    assert_eq!(out.observation, "name | price\nmelon | 3.25\npear | 0.75\n(1 more rows not shown)");
    let joined = registry
        .call("sql", &json!({"query": "SELECT p.name, SUM(o.quantity) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.name ORDER BY 2 DESC;"}))
        .await;
    assert_eq!(joined.observation, "name | SUM(o.quantity)\napple | 15\nmelon | 2");
    for write in ["DELETE FROM products", "INSERT INTO products VALUES (9, 'x', 1, 1)", "DROP TABLE orders", "CREATE TABLE t (x)"] {
        let out = registry.call("sql", &json!({"query": write})).await;
        assert_eq!(out.status, CallStatus::BadArguments, "{write}: {}", out.observation);
    }
    let attach = registry.call("sql", &json!({"query": format!("ATTACH DATABASE '{}' AS other", path.display())})).await;
    assert_eq!(attach.status, CallStatus::BadArguments, "{}", attach.observation);
    let syntax = registry.call("sql", &json!({"query": "SELEC * FROM products"})).await;
    assert!(syntax.observation.contains("SQL error"), "{}", syntax.observation);
    let count: i64 = rusqlite::Connection::open(&path).unwrap().query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 3);
    let slow = registry
        .call("sql", &json!({"query": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"}))
        .await;
    assert!(slow.observation.contains("interrupt"), "{}", slow.observation);
}

fn corpus() -> Vec<SearchDocument> {
    let doc = |id: &str, title: &str, text: &str| SearchDocument { id: id.into(), title: title.into(), text: text.into() };
    vec![
        doc("d1", "Paris", "Paris is the capital and largest city of France, on the Seine."),
        doc("d2", "Berlin", "Berlin is the capital of Germany. The Spree flows through Berlin."),
        doc("d3", "Seine", "The Seine is a river in northern France that flows through Paris to the English Channel."),
        doc("d4", "Baking", "Bread is made from flour, water, yeast and salt."),
    ]
}

#[tokio::test]
async fn bm25_ranks_by_relevance() {
    let config = SearchConfig { name: None, description: None, documents: "unused".into(), top_k: 2, snippet_chars: 20 };
    let search = Bm25Search::from_documents(&config, corpus()).unwrap();
    let ids = |q: &str, k| search.search(q, k).unwrap().into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(ids("river Seine France", 4)[..2], ["d3", "d1"]);
    assert_eq!(ids("Germany capital", 1), ["d2"]);
    assert_eq!(ids("yeast", 4), ["d4"]);
    assert!(ids("quantum chromodynamics", 4).is_empty());
    // Query syntax the model may write by accident does not fail.
    assert_eq!(ids("capital AND (Germany", 4)[0], "d2");
    let hits = search.search("Seine", 4).unwrap();
    assert!(hits[0].score >= hits[1].score && hits[0].score > 0.0);
    let out = search.call(&json!({"query": "bread flour"})).await.unwrap();
    assert_eq!(out, format!("1. [d4] Baking (score {:.3})\nBread is made from f...", search.search("bread flour", 1).unwrap()[0].score));
    assert_eq!(search.call(&json!({"query": "zebra"})).await.unwrap(), "No document matches \"zebra\".");
}

#[tokio::test]
async fn search_reads_jsonl_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docs.jsonl");
    let lines: Vec<String> = corpus().iter().map(|d| serde_json::to_string(d).unwrap()).collect();
    std::fs::write(&path, lines.join("\n") + "\n\n").unwrap();
    let config = SearchConfig { name: Some("wiki".into()), description: None, documents: path.clone(), top_k: 3, snippet_chars: 50 };
    let search = Bm25Search::new(&config).unwrap();
    assert_eq!(search.spec().name, "wiki");
    assert_eq!(search.search("Berlin Spree", 1).unwrap()[0].id, "d2");
    std::fs::write(&path, "{\"id\": 1}\n").unwrap();
    assert!(Bm25Search::new(&config).unwrap_err().contains("line 1"));
}

async fn loopback_server() -> String {
    async fn echo(headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
        let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Json(json!({"received": body, "key": key}))
    }
    async fn weather(Query(query): Query<BTreeMap<String, String>>) -> (axum::http::StatusCode, String) {
        match query.get("city").map(String::as_str) {
            Some("Oslo") => (axum::http::StatusCode::OK, "{\"temp_c\": -3}".into()),
            _ => (axum::http::StatusCode::NOT_FOUND, "{\"error\": \"unknown city\"}".into()),
        }
    }
    let app = Router::new().route("/echo", post(echo)).route("/weather", get(weather));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn http_tool_against_a_loopback_server() {
    let base = loopback_server().await;
    let post_tool = HttpTool::new(&HttpConfig {
        name: "echo".into(),
        description: "Echoes".into(),
        url: format!("{base}/echo"),
        method: "post".into(),
        headers: BTreeMap::from([("X-Api-Key".to_string(), "k123".to_string())]),
        parameters: json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}),
        timeout_secs: 5.0,
        max_response_chars: 4000,
    })
    .unwrap();
    let get_tool = HttpTool::new(&HttpConfig {
        name: "weather".into(),
        description: String::new(),
        url: format!("{base}/weather"),
        method: "GET".into(),
        headers: BTreeMap::new(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        timeout_secs: 5.0,
        max_response_chars: 4000,
    })
    .unwrap();
    let registry = ToolRegistry::new().with(Arc::new(post_tool)).unwrap().with(Arc::new(get_tool)).unwrap();
    let echoed = registry.call("echo", &json!({"n": 7})).await;
    assert_eq!(echoed.observation, "HTTP 200\n{\"received\":{\"n\":7},\"key\":\"k123\"}");
    let bad = registry.call("echo", &json!({"n": "seven"})).await;
    assert_eq!(bad.status, CallStatus::BadArguments);
    assert_eq!(registry.call("weather", &json!({"city": "Oslo"})).await.observation, "HTTP 200\n{\"temp_c\": -3}");
    assert_eq!(registry.call("weather", &json!({"city": "Atlantis"})).await.observation, "HTTP 404\n{\"error\": \"unknown city\"}");
    // A closed port is a tool failure, reported as an observation.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/x", listener.local_addr().unwrap());
    drop(listener);
    let dead = HttpTool::new(&HttpConfig {
        name: "dead".into(),
        description: String::new(),
        url: closed,
        method: "POST".into(),
        headers: BTreeMap::new(),
        parameters: json!({"type": "object"}),
        timeout_secs: 2.0,
        max_response_chars: 100,
    })
    .unwrap();
    let registry = ToolRegistry::new().with(Arc::new(dead)).unwrap();
    let failed = registry.call("dead", &json!({})).await;
    assert_eq!(failed.status, CallStatus::Failed, "{}", failed.observation);
    assert!(HttpTool::new(&HttpConfig { url: "file:///etc/passwd".into(), ..serde_yaml::from_str("{name: x, url: 'http://a'}").unwrap() })
        .is_err());
}

#[tokio::test]
async fn simulated_tool_answers_from_the_documentation() {
    let backend: Arc<dyn Backend> = Arc::new(common::scripted(vec![
        common::say(
            r#"(?s)simulating the API `flight_search`.*GET /flights.*Call: \{"from":"OSL","to":"BER"\}"#,
            "```json\n{\"flights\": [{\"id\": \"SK123\", \"departure\": \"08:15\"}]}\n```",
        ),
        common::say(r"(?s)Call: \{\}", "Sorry, I am only a language model."),
    ]));
    let config = SimulatedConfig {
        name: "flight_search".into(),
        description: "Finds flights".into(),
        parameters: json!({"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"}}}),
        documentation: "GET /flights?from=IATA&to=IATA returns {\"flights\": [{\"id\", \"departure\"}]}".into(),
        backend: "sim".into(),
        examples: vec![],
        temperature: None,
        seed: 1,
    };
    let registry = ToolRegistry::new().with(Arc::new(SimulatedTool::new(&config, backend))).unwrap();
    let out = registry.call("flight_search", &json!({"from": "OSL", "to": "BER"})).await;
    assert_eq!(out.status, CallStatus::Ok);
    assert_eq!(out.observation, r#"{"flights":[{"id":"SK123","departure":"08:15"}]}"#);
    let garbage = registry.call("flight_search", &json!({})).await;
    assert_eq!(garbage.status, CallStatus::Failed);
    assert!(garbage.observation.contains("not JSON"), "{}", garbage.observation);
}

#[tokio::test]
async fn tool_configs_build_from_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::shop_db(dir.path());
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(&docs, corpus().iter().map(|d| serde_json::to_string(d).unwrap() + "\n").collect::<String>()).unwrap();
    let yaml = format!(
        r#"
- kind: calculator
- kind: datetime
  today: "2024-05-01"
- kind: sqlite
  path: {db}
  max_rows: 5
- kind: search
  name: wiki
  documents: {docs}
- kind: http
  name: weather
  url: http://127.0.0.1:9/weather
  method: GET
  parameters: {{type: object, properties: {{city: {{type: string}}}}, required: [city]}}
- kind: simulated
  name: flights
  backend: sim
  documentation: "GET /flights"
"#,
        db = db.display(),
        docs = docs.display()
    );
    let configs: Vec<ToolConfig> = serde_yaml::from_str(&yaml).unwrap();
    let mut context = BuildContext::default();
    context.backends.insert("sim".into(), Arc::new(common::scripted(vec![])) as Arc<dyn Backend>);
    let registry = ToolRegistry::from_configs(&configs, &context).unwrap();
    assert_eq!(registry.names(), ["calculator", "datetime", "sql", "wiki", "weather", "flights"]);
    assert_eq!(registry.specs().len(), 6);

    let errors = [
        ("- kind: calculator\n  precision: 3\n", "unknown field"),
        ("- kind: abacus\n", "unknown variant"),
        ("- kind: sqlite\n", "missing field `path`"),
    ];
    for (text, want) in errors {
        let err = serde_yaml::from_str::<Vec<ToolConfig>>(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    let python: Vec<ToolConfig> = serde_yaml::from_str("- kind: python\n").unwrap();
    let err = ToolRegistry::from_configs(&python, &BuildContext::default()).unwrap_err().to_string();
    assert!(err.contains("needs a sandbox"), "{err}");
    let sim: Vec<ToolConfig> = serde_yaml::from_str("- kind: simulated\n  name: x\n  backend: nope\n  documentation: d\n").unwrap();
    let err = ToolRegistry::from_configs(&sim, &BuildContext::default()).unwrap_err().to_string();
    assert!(err.contains("expected backend `nope`"), "{err}");
    let twice: Vec<ToolConfig> = serde_yaml::from_str("- kind: calculator\n- kind: calculator\n").unwrap();
    let err = ToolRegistry::from_configs(&twice, &BuildContext::default()).unwrap_err().to_string();
    assert!(err.contains("already registered"), "{err}");
}
