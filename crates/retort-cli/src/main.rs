//! The `retort` command: a thin layer over `retort-engine` that knows clap and the terminal.
//!
//! Architecture Invariant: only this crate prints to the terminal or reads the command line.

mod progress;
mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use retort_engine::{Overrides, PreparedRun, Recipe, RunOptions, RunOutcome};
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: a run makes many small, short-lived allocations
/// (records, requests, answers, JSON) on several threads, and the system allocator spent a
/// quarter of the benchmark's CPU time on them (see bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// retort: generate training data for language models with language models.
#[derive(Parser)]
#[command(name = "retort", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a recipe (a file, or a built-in recipe's name).
    Run(RunArgs),
    /// Check a recipe without running it: structure, templates, fields, backends.
    Validate {
        /// The recipe file, or a built-in recipe's name.
        recipe: PathBuf,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Show the state of a run directory: counts per step, ok and failed.
    Status {
        /// The run directory (`--out` of `retort run`).
        dir: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a self-contained HTML report of a run directory (default DIR/report.html).
    Report {
        /// The run directory.
        dir: PathBuf,
        /// Where to write the page.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve a local page to browse a run's records, live while the run goes.
    View {
        /// The run directory.
        dir: PathBuf,
        /// The port (default: a free one, printed).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The address to listen on. Anything but 127.0.0.1 shows the run's records to others.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
    },
    /// List the built-in recipes: name, tab, the paper it implements.
    Recipes {
        /// Also print what each outputs and needs.
        #[arg(long, short)]
        long: bool,
    },
    /// Run a Python file in the sandbox and print one JSON object: status, exit_code, stdout, stderr, duration_ms.
    Exec {
        /// The Python file; standard input is passed to it.
        file: PathBuf,
        /// Wall-clock seconds before the program is killed.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Memory limit in MB.
        #[arg(long, default_value_t = 512)]
        memory: u64,
        /// Run even where the kernel cannot sandbox (no Landlock or seccomp). Only for code you trust.
        #[arg(long)]
        unsafe_no_sandbox: bool,
    },
    /// Copy a built-in recipe (recipe, templates, seed data) into a folder to edit.
    Init {
        /// The built-in recipe's name (see `retort recipes`).
        name: String,
        /// The folder to create.
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The recipe file, or the name of a built-in recipe (see `retort recipes`).
    recipe: PathBuf,
    /// The run directory (data, lineage, rejects, card, run store). Default: runs/RECIPE-NAME.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    /// Seconds in-flight requests may finish after Ctrl-C.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Print the run report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Run again although this recipe already completed here, when records failed: their
    /// requests are sent again; every answer that arrived before is reused.
    #[arg(long)]
    retry_failed: bool,
    /// Exit with status 3 when a step's share of failed records is above this (0 to 1).
    /// Default: exit 3 only when every record that reached some step failed there.
    #[arg(long, value_name = "FRACTION")]
    max_failed: Option<f64>,
    /// Write OUT/report.html when the run ends (also after Ctrl-C).
    #[arg(long)]
    report: bool,
}

#[derive(clap::Args, Default)]
struct OverrideArgs {
    /// Override a recipe value: PATH=VALUE, e.g. `steps[0].load.path=my.jsonl` or `vars.rounds=3`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Use this backend kind for the recipe's `llm:` (openai, local, scripted).
    #[arg(long)]
    backend: Option<String>,
    /// The OpenAI-compatible server for the recipe's `llm:`, e.g. http://127.0.0.1:8000/v1.
    #[arg(long)]
    base_url: Option<String>,
    /// The model for the recipe's `llm:`.
    #[arg(long)]
    model: Option<String>,
    /// The environment variable that holds the API key (default OPENAI_API_KEY); the key itself is never written anywhere.
    #[arg(long)]
    api_key_env: Option<String>,
    /// Read at most N seed records.
    #[arg(long)]
    limit: Option<usize>,
}

impl OverrideArgs {
    fn to_overrides(&self) -> Overrides {
        Overrides {
            set: self.set.clone(),
            backend: self.backend.clone(),
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            limit: self.limit,
        }
    }
}

fn main() -> ExitCode {
    // Hidden helper modes: this binary re-launched as the sandbox helper or the model worker,
    // before any thread starts.
    if retort_sandbox::is_helper_invocation() {
        retort_sandbox::helper_main();
    }
    #[cfg(feature = "local")]
    if std::env::args().nth(1).as_deref() == Some("__llama-worker") {
        retort_llama::worker_main();
    }
    #[cfg(feature = "local")]
    if std::env::args().nth(1).as_deref() == Some("__train") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(retort_train::trainer_main(&args) as u8);
    }
    #[cfg(feature = "local")]
    if std::env::args().nth(1).as_deref() == Some("__logprobs") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        return ExitCode::from(retort_train::logprobs_main(&args) as u8);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETORT_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { recipe, overrides } => validate(&recipe, &overrides.to_overrides()),
        Command::Status { dir, json } => status(&dir, json),
        Command::Report { dir, out } => report(&dir, out.as_deref()),
        Command::View { dir, port, host } => view(dir, &host, port),
        Command::Recipes { long } => recipes(long),
        Command::Init { name, dir } => init(&name, &dir),
        Command::Exec { file, timeout, memory, unsafe_no_sandbox } => exec(&file, timeout, memory, unsafe_no_sandbox),
        Command::Run(args) => run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            if is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("retort: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn validate(path: &Path, overrides: &Overrides) -> anyhow::Result<ExitCode> {
    let name = path.to_string_lossy().to_string();
    // A built-in recipe is checked from a copy in a temporary folder, as `run` would write it.
    let scratch = if !path.exists() && retort_engine::builtin::is_builtin(&name) { Some(tempfile::tempdir()?) } else { None };
    let file = match &scratch {
        Some(dir) => retort_engine::builtin::extract(&name, dir.path())?,
        None => recipe_in(path)?,
    };
    match Recipe::load(&file, overrides) {
        Ok(recipe) => {
            let steps = retort_engine::step_paths(&recipe);
            println!("{}: ok ({} steps, recipe `{}`)", path.display(), steps.len(), recipe.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            Ok(ExitCode::from(2))
        }
    }
}

fn status(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let Some(status) = retort_engine::status(dir)? else {
        eprintln!("retort: no run in {} (no run.sqlite there)", dir.display());
        return Ok(ExitCode::from(2));
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", summary::status_table(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn report(dir: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    match retort_report::write_report(dir, out) {
        Ok(path) => {
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ retort_report::ReportError::NoRun { .. }) => {
            eprintln!("retort: {error}");
            Ok(ExitCode::from(2))
        }
        Err(error) => Err(error.into()),
    }
}

fn view(dir: PathBuf, host: &str, port: u16) -> anyhow::Result<ExitCode> {
    if retort_engine::status(&dir)?.is_none() && retort_engine::RunIdentity::read(&dir).is_none() {
        eprintln!("retort: no run in {} (no run.sqlite or run.json there)", dir.display());
        return Ok(ExitCode::from(2));
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (listener, address) = retort_report::view::bind(host, port).await?;
        if !address.ip().is_loopback() {
            eprintln!("retort: listening on {address}: anyone who reaches this address can read the run's records");
        }
        println!("http://{address}/");
        eprintln!("retort: serving {} (Ctrl-C to stop)", dir.display());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        retort_report::view::serve(dir, listener, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn recipes(long: bool) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for builtin in retort_engine::builtin::builtins() {
        if long {
            writeln!(stdout, "{}\t{}\t{}\t{}", builtin.name, builtin.paper, builtin.outputs, builtin.needs)?;
        } else {
            writeln!(stdout, "{}\t{}", builtin.name, builtin.paper)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exec(file: &Path, timeout: f64, memory: u64, unsafe_no_sandbox: bool) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let code = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut stdin = Vec::new();
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        std::io::stdin().read_to_end(&mut stdin).context("reading standard input")?;
    }
    let mut config = retort_sandbox::SandboxConfig::for_current_exe().context("finding the running binary")?;
    config.allow_unsandboxed = unsafe_no_sandbox;
    let limits = retort_sandbox::Limits {
        timeout: Duration::from_secs_f64(timeout.max(0.1)),
        memory_mb: memory,
        cpu_seconds: timeout.ceil().max(1.0) as u64,
        ..retort_sandbox::Limits::default()
    };
    let sandbox = match retort_sandbox::Sandbox::new(config) {
        Ok(sandbox) => sandbox,
        Err(error) => {
            eprintln!("retort: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let request = retort_sandbox::ExecRequest::new(code).with_stdin(stdin).with_limits(limits);
    let result = runtime.block_on(sandbox.run(request))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(match result.status {
        retort_sandbox::ExecStatus::Ok => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

fn init(name: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    if dir.exists() && std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()).unwrap_or(false) {
        eprintln!("retort: {} exists and is not empty; choose a new folder", dir.display());
        return Ok(ExitCode::from(2));
    }
    if !retort_engine::builtin::is_builtin(name) {
        eprintln!("retort: no built-in recipe named `{name}`; `retort recipes` lists them");
        return Ok(ExitCode::from(2));
    }
    let recipe = retort_engine::builtin::extract(name, dir)?;
    println!("{} ready: edit it, then `retort run {}`", dir.display(), recipe.display());
    Ok(ExitCode::SUCCESS)
}

/// The recipe file to run: the path given, or a built-in recipe written into the run directory.
fn resolve_recipe(recipe: &Path, out: Option<&Path>) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let name = recipe.to_string_lossy().to_string();
    if !recipe.exists() && retort_engine::builtin::is_builtin(&name) {
        let out_dir = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("runs").join(&name));
        let file = retort_engine::builtin::extract(&name, &out_dir.join("recipe"))?;
        return Ok((file, Some(out_dir)));
    }
    Ok((recipe_in(recipe)?, out.map(Path::to_path_buf)))
}

/// The recipe file a path names: the file itself, or the `recipe.yaml` of a folder (a copy made
/// by `retort init`). A folder without one is an error that says so, and names the built-in
/// recipe of the same name when there is one (a folder here hides it).
fn recipe_in(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let file = path.join("recipe.yaml");
    if file.is_file() {
        return Ok(file);
    }
    let text = path.to_string_lossy();
    let name = text.trim_end_matches('/');
    let hint = if retort_engine::builtin::is_builtin(name) {
        format!("; a folder of that name here hides the built-in recipe `{name}`: run it from another folder")
    } else {
        String::new()
    };
    anyhow::bail!("{} is a folder without a recipe.yaml in it{hint}", path.display())
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let (recipe_path, out_dir) = resolve_recipe(&args.recipe, args.out.as_deref())?;
    let recipe = match Recipe::load(&recipe_path, &args.overrides.to_overrides()) {
        Ok(recipe) => recipe,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(ExitCode::from(2));
        }
    };
    let out_dir = out_dir.unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut options = RunOptions::new(&out_dir);
        options.grace = Duration::from_secs_f64(args.grace.max(0.0));
        options.retry_failed = args.retry_failed;
        let stop_now = options.stop_now.clone();
        let prepared = PreparedRun::prepare(recipe, options)?;
        if prepared.up_to_date()? {
            let failed = prepared.failed_last_time()?;
            let hint = if failed > 0 {
                format!(" ({failed} records failed there; --retry-failed sends their requests again)")
            } else {
                String::new()
            };
            eprintln!("retort: {} is up to date: the same recipe already completed there; nothing to do{hint}", out_dir.display());
        }
        let cancel = CancellationToken::new();
        tokio::spawn(handle_signals(cancel.clone(), stop_now));
        let show_progress = !args.quiet && !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let progress = show_progress.then(|| progress::Progress::start(prepared.stats().clone()));
        let report = prepared.execute(cancel).await;
        if let Some(progress) = progress {
            progress.finish();
        }
        // Written however the run ended: completed, interrupted, or failed.
        if args.report {
            match retort_report::write_report(&out_dir, None) {
                Ok(path) => eprintln!("retort: report: {}", path.display()),
                Err(error) => eprintln!("retort: could not write the report: {error}"),
            }
        }
        let report = report?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            eprint!("{}", summary::report(&report, &out_dir));
        }
        if report.outcome == RunOutcome::Interrupted {
            return Ok(ExitCode::from(130));
        }
        let failing = report.failures_above(args.max_failed);
        if !failing.is_empty() {
            let rule = match args.max_failed {
                Some(threshold) => format!("more than {:.0}% of records failed", threshold * 100.0),
                None => "every record failed".to_string(),
            };
            eprintln!("retort: {rule} in {} (see {}); exit status 3", failing.join("; "), out_dir.join("failed.jsonl").display());
            return Ok(ExitCode::from(3));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C, SIGTERM and SIGHUP stop the run cleanly (work in flight finishes within the grace
/// period, outputs and the card are written); a second signal stops it at once, still
/// committing every answer that arrived and writing the files; a third quits outright.
async fn handle_signals(cancel: CancellationToken, stop_now: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut terminate), Ok(mut hangup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
        return;
    };
    let mut next = async || {
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.is_ok(),
            received = terminate.recv() => received.is_some(),
            received = hangup.recv() => received.is_some(),
        }
    };
    if !next().await {
        return;
    }
    eprintln!("\nretort: stopping: finishing requests in flight (Ctrl-C again to stop at once)");
    cancel.cancel();
    if !next().await {
        return;
    }
    eprintln!("retort: stopping now; answers received so far are kept");
    stop_now.cancel();
    if next().await {
        eprintln!("retort: quit without writing the outputs; answers committed so far are kept");
        std::process::exit(130);
    }
}
