//! `retort __train SPEC.json`: one job in a process of its own.
//!
//! Progress goes to stdout as JSON lines (`{"step": …}` per step, then `{"report": …}`), the
//! adapter's path is the last line; errors go to stderr with exit status 1.

use std::io::Write;
use std::sync::atomic::AtomicBool;

use crate::spec::TrainSpec;

/// Runs the job named by the first argument; returns the process's exit status.
pub fn trainer_main(args: &[String]) -> i32 {
    let Some(path) = args.first() else {
        eprintln!("usage: retort __train SPEC.json");
        return 2;
    };
    let spec: TrainSpec = match std::fs::read_to_string(path)
        .map_err(|error| error.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
    {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("retort trainer: reading the job {path}: {error}");
            return 2;
        }
    };
    if let Some(threads) = spec.settings.threads {
        // candle's kernels and rayon read this when they first start their threads.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    // OpenBLAS reads this when it is loaded: its idle threads yield the cores after 2^4
    // cycles of spinning rather than 2^28 (the default), which on a 2-core machine took them
    // from candle's threads (76 vs 61 tokens/s in bench/train-speed.sh).
    if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
        std::env::set_var("OPENBLAS_THREAD_TIMEOUT", "4");
    }
    // A trainer whose run died (kill -9) stops too, rather than train on for nobody.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        if std::os::unix::process::parent_id() != parent {
            exit_now(3);
        }
    });
    let cancel = AtomicBool::new(false);
    let mut stdout = std::io::stdout();
    let mut progress = |step: &crate::train::StepLog| {
        if let Ok(line) = serde_json::to_string(&serde_json::json!({ "step": step })) {
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    };
    match crate::train::train(&spec, &cancel, &mut progress) {
        Ok(report) => {
            let mut stdout = std::io::stdout();
            if let Ok(line) = serde_json::to_string(&serde_json::json!({ "report": report })) {
                let _ = writeln!(stdout, "{line}");
            }
            let _ = writeln!(stdout, "{}", report.adapter.display());
            0
        }
        Err(error) => {
            eprintln!("retort trainer: {error}");
            1
        }
    }
}

/// `retort __logprobs MODEL ADAPTER|- ROWS`: the summed log-probability of each row's answer
/// tokens (SFT rows) or of its chosen and rejected answers (preference rows), one JSON line per
/// row, under the model with the adapter (`-`: none). For measuring a trained model.
pub fn logprobs_main(args: &[String]) -> i32 {
    let [model, adapter, rows] = args else {
        eprintln!("usage: retort __logprobs MODEL ADAPTER|- ROWS");
        return 2;
    };
    let adapter = (adapter != "-").then(|| std::path::PathBuf::from(adapter));
    match crate::train::logprobs(model.as_ref(), adapter.as_deref(), rows.as_ref(), &crate::spec::TrainSettings::default()) {
        Ok(values) => {
            for value in values {
                println!("{value}");
            }
            0
        }
        Err(error) => {
            eprintln!("retort logprobs: {error}");
            1
        }
    }
}

/// Ends the process at once, without the C libraries' exit handlers: `exit` runs OpenBLAS's,
/// which waits for its threads while the training thread is inside a product, so a trainer
/// whose run was killed trained on through `std::process::exit`.
#[allow(unsafe_code)]
fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` takes any status and does not return; nothing is left to clean up for a
    // trainer whose run is gone (the adapter is written under a `.partial` name until done).
    unsafe { libc::_exit(status) }
}
