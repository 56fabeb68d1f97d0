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
        /// The recipe file.
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
    /// List the built-in recipes: name, tab, the paper it implements.
    Recipes,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The recipe file.
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
}

#[derive(clap::Args, Default)]
struct OverrideArgs {
    /// Override a recipe value: PATH=VALUE, e.g. `steps[0].load.path=my.jsonl` or `vars.rounds=3`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Use this backend kind for the recipe's `llm:` (openai, scripted).
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETORT_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { recipe, overrides } => validate(&recipe, &overrides.to_overrides()),
        Command::Status { dir, json } => status(&dir, json),
        Command::Recipes => {
            println!("(no built-in recipes yet)");
            Ok(ExitCode::SUCCESS)
        }
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
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn validate(path: &Path, overrides: &Overrides) -> anyhow::Result<ExitCode> {
    match Recipe::load(path, overrides) {
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

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let recipe = match Recipe::load(&args.recipe, &args.overrides.to_overrides()) {
        Ok(recipe) => recipe,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return Ok(ExitCode::from(2));
        }
    };
    let out_dir = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&recipe.name));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut options = RunOptions::new(&out_dir);
        options.grace = Duration::from_secs_f64(args.grace.max(0.0));
        let prepared = PreparedRun::prepare(recipe, options)?;
        if prepared.up_to_date()? {
            eprintln!("retort: {} is up to date: the same recipe already completed there; nothing to do", out_dir.display());
        }
        let cancel = CancellationToken::new();
        {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("\nretort: stopping: finishing requests in flight (Ctrl-C again to quit now)");
                    cancel.cancel();
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!("retort: quit; answers received so far are kept");
                        std::process::exit(130);
                    }
                }
            });
        }
        let show_progress = !args.quiet && !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let progress = show_progress.then(|| progress::Progress::start(prepared.stats().clone()));
        let report = prepared.execute(cancel).await;
        if let Some(progress) = progress {
            progress.finish();
        }
        let report = report?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            eprint!("{}", summary::report(&report, &out_dir));
        }
        Ok(match report.outcome {
            RunOutcome::Interrupted => ExitCode::from(130),
            RunOutcome::Completed | RunOutcome::UpToDate => ExitCode::SUCCESS,
        })
    })
}
