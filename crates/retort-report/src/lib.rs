//! Looking at a run: `retort report` writes one self-contained HTML page of a run directory
//! (funnel, requests and time, distributions, duplicates, metrics, samples), and `retort view`
//! serves a local page to browse its records while the run goes.
//!
//! Architecture Invariant: this crate only reads a run directory (its files and, read-only, its
//! run store); the one file it writes is the report. Every text from the run is escaped
//! (`html::escape`) or, in the viewer, set as text by the page's script.

pub mod collect;
pub mod html;
pub mod records;
mod svg;
pub mod view;

use std::path::{Path, PathBuf};

pub use collect::{collect, RunData};

/// The report's file name inside a run directory.
pub const REPORT_FILE: &str = "report.html";

/// A failure to read a run directory or to serve it.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The directory holds no run.
    #[error("no run in {}: {why}", dir.display())]
    NoRun {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        why: String,
    },
    /// The run store could not be read.
    #[error("reading the run store in {}: {message}", dir.display())]
    Status {
        /// The run directory.
        dir: PathBuf,
        /// The store's error.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The viewer could not listen or serve.
    #[error("viewer: {message}")]
    Serve {
        /// What went wrong.
        message: String,
    },
}

/// Writes the report of the run in `dir` to `out` (default `DIR/report.html`), through a
/// partial file renamed into place; returns the path written.
pub fn write_report(dir: &Path, out: Option<&Path>) -> Result<PathBuf, ReportError> {
    let data = collect(dir)?;
    let page = html::render(&data);
    let path = out.map(Path::to_path_buf).unwrap_or_else(|| dir.join(REPORT_FILE));
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, page).map_err(|source| ReportError::Io { path: partial.clone(), source })?;
    std::fs::rename(&partial, &path).map_err(|source| ReportError::Io { path: path.clone(), source })?;
    Ok(path)
}
