//! The report and the viewer in a real headless browser (Chromium, driven over WebDriver by
//! chromedriver): they load without console errors, the plots are drawn, the viewer's filters
//! and search work, and an answer holding markup and script is shown as text.
//!
//! `scripts/setup-browser.sh` installs Chromium; where neither it nor chromedriver is found,
//! the test says so and passes without running. Screenshots go to a temporary folder, or to
//! `RETORT_SCREENSHOTS` when that is set (how the README's pictures are made).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

struct Driver {
    client: reqwest::Client,
    session: String,
    process: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    async fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while client.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--window-size=1400,1000", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let answer: Value = client.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let id = answer["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_string();
        Driver { client, session: format!("{base}/session/{id}"), process }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"].get("error").is_some() {
            panic!("webdriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn script(&self, code: &str) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": code, "args": []}))).await
    }

    /// Runs `code` until it returns something truthy, for up to 15 s.
    async fn wait_for(&self, what: &str, code: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = self.script(code).await;
            if !(value.is_null() || value == json!(false) || value == json!(0) || value == json!("")) {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let found = self.call(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        found.as_object().and_then(|object| object.values().next()).and_then(Value::as_str).unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({"text": text}))).await;
    }

    /// The console's errors since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let logs = self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn report_and_viewer_in_a_browser() {
    let (Some(chromium), Some(chromedriver)) = (find(&["chromium", "chromium-browser", "google-chrome"]), find(&["chromedriver"])) else {
        eprintln!("SKIPPED report_and_viewer_in_a_browser: no chromium and chromedriver on PATH (scripts/setup-browser.sh installs them)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    common::run_recipe(dir.path(), false);
    let out = dir.path().join("out");
    let report = retort_report::write_report(&out, None).unwrap();
    let failed_rows = std::fs::read_to_string(out.join("failed.jsonl")).unwrap().lines().count();
    let shots = std::env::var_os("RETORT_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| dir.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let (listener, address) = retort_report::view::bind("127.0.0.1", 0).await.unwrap();
        let viewer = tokio::spawn(retort_report::view::serve(out.clone(), listener, std::future::pending()));
        let driver = Driver::start(&chromium, &chromedriver, &dir.path().join("profile")).await;

        // The report: drawn, no errors, no script of the model's.
        driver.go(&format!("file://{}", report.display())).await;
        let charts = driver.wait_for("the report's charts", "return document.querySelectorAll('svg.chart').length").await;
        assert!(charts.as_u64().unwrap() >= 4, "charts: {charts}");
        let bars = driver.script("return document.querySelectorAll('svg.chart rect.bar').length").await;
        assert!(bars.as_u64().unwrap() > 10, "bars: {bars}");
        // Drawn: the first chart has a size on the page.
        let width = driver.script("return document.querySelector('svg.chart').getBoundingClientRect().width").await;
        assert!(width.as_f64().unwrap() > 100.0, "width {width}");
        assert_eq!(driver.script("return document.querySelectorAll('script').length").await, json!(0));
        let shown = driver.script("return document.body.textContent").await;
        assert!(shown.as_str().unwrap().contains("<script>alert('pwned')</script><b>bold</b>"), "the answer is shown as text");
        driver.screenshot(&shots.join("report.png")).await;
        assert_eq!(driver.console_errors().await, Vec::<String>::new(), "console errors on the report");

        // The viewer: lists every record, filters by status, searches, shows markup as text.
        driver.go(&format!("http://{address}/")).await;
        driver.wait_for("the viewer's list", "return document.querySelectorAll('#list li').length").await;
        let counts = driver.wait_for("the counts", "return document.getElementById('counts').textContent").await;
        assert!(counts.as_str().unwrap().contains(&format!("failed {failed_rows}")), "counts: {counts}");
        driver.click("#status option[value='failed']").await;
        let only_failed = format!(
            "const rows = [...document.querySelectorAll('#list li')]; return rows.length === {failed_rows} && rows.every(row => row.classList.contains('failed'))"
        );
        driver.wait_for("only failed records", &only_failed).await;
        driver.click("#status option[value='']").await;
        driver.type_into("#q", "pwned").await;
        driver.click("#search").await;
        driver.wait_for(
            "the search's one match",
            "const rows = document.querySelectorAll('#list li'); return rows.length >= 1 && [...rows].every(row => row.textContent.includes('html'))",
        )
        .await;
        driver.click("#list li.kept").await;
        let detail = driver.wait_for("the record", "const d = document.getElementById('detail'); return d.querySelector('h3') && d.textContent").await;
        assert!(detail.as_str().unwrap().contains("<script>alert('pwned')</script><b>bold</b>"), "detail: {detail}");
        assert_eq!(driver.script("return document.querySelectorAll('#detail script, #detail b').length").await, json!(0));
        assert_eq!(driver.script("return document.querySelectorAll('script').length").await, json!(1), "only the page's own script");
        // Its lineage: the messages sent.
        assert!(detail.as_str().unwrap().contains("messages sent"));
        driver.screenshot(&shots.join("viewer.png")).await;
        assert_eq!(driver.console_errors().await, Vec::<String>::new(), "console errors on the viewer");
        viewer.abort();
    });
}
