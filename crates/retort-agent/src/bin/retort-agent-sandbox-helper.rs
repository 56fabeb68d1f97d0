//! The sandbox helper as a stand-alone program, for this crate's tests (retort itself uses
//! its hidden `__sandbox-helper` subcommand instead).

fn main() {
    if retort_sandbox::is_helper_invocation() {
        retort_sandbox::helper_main()
    }
    eprintln!("retort-agent-sandbox-helper: run as the sandbox helper only (first argument `{}`)", retort_sandbox::HELPER_SUBCOMMAND);
    std::process::exit(2)
}
