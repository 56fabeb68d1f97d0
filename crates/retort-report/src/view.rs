//! `retort view`: a local page to browse a run's records while it goes, served by retort.
//!
//! It reads the run directory and the run store read-only (a WAL reader beside the run's
//! writer), so it is safe to start during a run. The page's assets are embedded in the binary;
//! the page renders every field with `textContent`, never as markup, and a Content Security
//! Policy forbids inline scripts and anything from elsewhere.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::records::{self, Kind, LineCounter, Query};
use crate::ReportError;

const PAGE: &str = include_str!("../assets/view.html");
const SCRIPT: &str = include_str!("../assets/view.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:";

struct Viewer {
    dir: PathBuf,
    counter: Mutex<LineCounter>,
}

/// Serves the viewer of `dir` on `listener` until `shutdown` completes.
pub async fn serve(
    dir: PathBuf,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ReportError> {
    let address = listener.local_addr().map_err(|source| ReportError::Serve { message: source.to_string() })?;
    let app = router(dir);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| ReportError::Serve { message: format!("{address}: {error}") })
}

/// Binds `host:port` (port 0: a free one).
pub async fn bind(host: &str, port: u16) -> Result<(tokio::net::TcpListener, SocketAddr), ReportError> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|error| ReportError::Serve { message: format!("cannot listen on {host}:{port}: {error}") })?;
    let address = listener.local_addr().map_err(|error| ReportError::Serve { message: error.to_string() })?;
    Ok((listener, address))
}

/// The viewer's routes over `dir`.
pub fn router(dir: PathBuf) -> Router {
    let viewer = Arc::new(Viewer { dir, counter: Mutex::new(LineCounter::default()) });
    Router::new()
        .route("/", get(|| async { asset(PAGE, "text/html; charset=utf-8") }))
        .route("/app.js", get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }))
        .route("/style.css", get(|| async { asset(crate::html::STYLE, "text/css; charset=utf-8") }))
        .route("/report", get(report))
        .route("/api/summary", get(summary))
        .route("/api/records", get(list))
        .route("/api/record/{source}/{line}", get(one))
        .with_state(viewer)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn failure(error: ReportError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({"error": error.to_string()}))).into_response()
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ReportError> + Send + 'static) -> Result<T, ReportError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| ReportError::Serve { message: error.to_string() })?
}

async fn report(State(viewer): State<Arc<Viewer>>) -> Response {
    let dir = viewer.dir.clone();
    match blocking(move || crate::collect::collect(&dir)).await {
        Ok(data) => {
            let mut response = crate::html::render(&data).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
            );
            response
        }
        Err(error) => failure(error),
    }
}

#[derive(Serialize)]
struct SourceCount {
    name: String,
    kind: Kind,
    rows: u64,
    partial: bool,
}

#[derive(Serialize)]
struct Summary {
    dir: String,
    recipe: Option<String>,
    state: Option<String>,
    alive: bool,
    elapsed_s: Option<f64>,
    answers: Option<u64>,
    models: Vec<String>,
    fingerprint: Option<String>,
    seed: Option<u64>,
    retort_version: Option<String>,
    steps: Vec<StepCount>,
    rounds: Vec<u32>,
    sources: Vec<SourceCount>,
}

#[derive(Serialize)]
struct StepCount {
    step: String,
    kind: String,
    records_in: u64,
    out: u64,
    dropped: u64,
    failed: u64,
    in_flight: i64,
}

async fn summary(State(viewer): State<Arc<Viewer>>) -> Response {
    let work = {
        let viewer = viewer.clone();
        move || {
            let status = retort_engine::status(&viewer.dir)
                .map_err(|error| ReportError::Status { dir: viewer.dir.clone(), message: error.to_string() })?;
            let identity = retort_engine::RunIdentity::read(&viewer.dir);
            let mut counter = viewer.counter.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let sources = records::sources(&viewer.dir)
                .into_iter()
                .map(|source| SourceCount {
                    rows: counter.count(&source.file),
                    name: source.name,
                    kind: source.kind,
                    partial: source.partial,
                })
                .collect();
            let mut rounds: Vec<u32> =
                status.iter().flat_map(|status| status.steps.iter().flat_map(|step| step.rounds.iter().map(|round| round.round))).collect();
            rounds.sort_unstable();
            rounds.dedup();
            Ok(Summary {
                dir: viewer.dir.display().to_string(),
                recipe: status
                    .as_ref()
                    .map(|status| status.recipe.clone())
                    .or_else(|| identity.as_ref().map(|identity| identity.recipe.clone())),
                state: status.as_ref().map(|status| status.state.clone()),
                alive: status.as_ref().is_some_and(|status| status.alive),
                elapsed_s: status.as_ref().map(|status| status.elapsed_s),
                answers: status.as_ref().map(|status| status.answers),
                models: identity.as_ref().map(|identity| identity.models.clone()).unwrap_or_default(),
                fingerprint: identity.as_ref().map(|identity| identity.fingerprint.clone()),
                seed: identity.as_ref().map(|identity| identity.seed),
                retort_version: identity.as_ref().map(|identity| identity.retort_version.clone()),
                steps: status
                    .iter()
                    .flat_map(|status| status.steps.iter())
                    .map(|step| StepCount {
                        step: step.step.clone(),
                        kind: step.kind.clone(),
                        records_in: step.records_in,
                        out: step.out,
                        dropped: step.dropped,
                        failed: step.failed,
                        in_flight: step.in_flight,
                    })
                    .collect(),
                rounds,
                sources,
            })
        }
    };
    match blocking(work).await {
        Ok(summary) => no_store(Json(summary).into_response()),
        Err(error) => failure(error),
    }
}

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn list(State(viewer): State<Arc<Viewer>>, UrlQuery(query): UrlQuery<Query>) -> Response {
    let dir = viewer.dir.clone();
    match blocking(move || records::list(&dir, &query)).await {
        Ok(page) => no_store(Json(page).into_response()),
        Err(error) => failure(error),
    }
}

async fn one(State(viewer): State<Arc<Viewer>>, UrlPath((source, line)): UrlPath<(String, usize)>) -> Response {
    let dir = viewer.dir.clone();
    match blocking(move || records::record(&dir, &source, line)).await {
        Ok(Some(record)) => no_store(Json(record).into_response()),
        Ok(None) => (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such record"}))).into_response(),
        Err(error) => failure(error),
    }
}
