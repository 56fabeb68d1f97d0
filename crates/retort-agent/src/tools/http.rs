//! The HTTP tool: calls one configured endpoint with the model's arguments.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ToolError;
use crate::tool::{clip, Tool};

fn default_method() -> String {
    "POST".into()
}

fn default_timeout() -> f64 {
    10.0
}

fn default_max_chars() -> usize {
    4000
}

fn default_parameters() -> Value {
    serde_json::json!({"type": "object"})
}

/// The HTTP tool's configuration (`kind: http`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The tool's name, as the model calls it.
    pub name: String,
    /// What the endpoint does, for the model.
    #[serde(default)]
    pub description: String,
    /// The endpoint (`http` or `https`).
    pub url: String,
    /// `GET` (arguments go in the query string) or `POST`, `PUT`, `PATCH`, `DELETE`
    /// (arguments are the JSON body); default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Headers sent with every call (the engine substitutes secrets before building).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON schema of the arguments (default: any object).
    #[serde(default = "default_parameters")]
    pub parameters: Value,
    /// Seconds to wait for the answer (default 10).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Most characters of the response body shown to the model (default 4000).
    #[serde(default = "default_max_chars")]
    pub max_response_chars: usize,
}

/// Calls a configured URL; the observation is `HTTP <status>` and the response body.
#[derive(Debug, Clone)]
pub struct HttpTool {
    config: HttpConfig,
    method: reqwest::Method,
    client: reqwest::Client,
}

impl HttpTool {
    /// A tool for this endpoint; fails on a bad URL, method or header.
    pub fn new(config: &HttpConfig) -> Result<HttpTool, String> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| format!("url {:?}: {e}", config.url))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("url {:?}: expected an http or https URL", config.url));
        }
        let method = match config.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            other => return Err(format!("method: expected GET, POST, PUT, PATCH or DELETE, found {other:?}")),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &config.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header name {name:?}: {e}"))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| format!("header {name}: the value is not valid in a header: {e}"))?;
            headers.insert(name, value);
        }
        let timeout = Duration::try_from_secs_f64(config.timeout_secs).map_err(|e| format!("timeout_secs {}: {e}", config.timeout_secs))?;
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(HttpTool { config: config.clone(), method, client })
    }
}

fn query_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.config.name.clone(),
            description: self.config.description.clone(),
            parameters: self.config.parameters.clone(),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let mut request = self.client.request(self.method.clone(), &self.config.url);
        if self.method == reqwest::Method::GET {
            let pairs: Vec<(String, String)> =
                arguments.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), query_value(v))).collect()).unwrap_or_default();
            request = request.query(&pairs);
        } else {
            request = request.json(arguments);
        }
        let response = request.send().await.map_err(|e| ToolError::Failed(format!("{} {}: {e}", self.method, self.config.url)))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| ToolError::Failed(format!("reading the response of {}: {e}", self.config.url)))?;
        Ok(format!("HTTP {}\n{}", status.as_u16(), clip(&body, self.config.max_response_chars)))
    }
}
