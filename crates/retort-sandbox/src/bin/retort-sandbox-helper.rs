//! The sandbox helper as a stand-alone program, for this crate's tests (retort itself uses
//! its hidden `__sandbox-helper` subcommand instead).

fn main() {
    retort_sandbox::helper_main()
}
