//! `switchyard`: the admin CLI of a Switchyard server — environments, flags, segments,
//! tokens, the audit log and evaluation — and flags as code: `export` an environment
//! to files, `plan` what the files would change, `apply` them in one atomic write.
//!
//! Exit codes: 0 done (for `plan`: nothing to change); 1 the server refused or could
//! not be reached; 2 `plan` found changes; 3 invalid input (arguments or files).
//! User docs: docs/cli.md.

mod args;
mod commands;
mod diff;
mod error;
mod files;
mod output;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match args::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // `--help` and `--version` are not errors.
            let code = if e.use_stderr() { error::INVALID } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
