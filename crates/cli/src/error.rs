//! What a command can fail with, and the exit code each failure gives.

use std::path::PathBuf;

/// Exit code: the server refused or could not be reached.
pub const FAILED: u8 = 1;
/// Exit code: `plan` found changes.
pub const CHANGES: u8 = 2;
/// Exit code: invalid input (arguments or files).
pub const INVALID: u8 = 3;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error, or could not be reached.
    #[error("{0}")]
    Server(#[from] switchyard_sdk::Error),
    /// The environment changed between `plan` and the write.
    #[error(
        "environment `{env}` changed while this plan was made (someone else wrote to it); \
         nothing was written — run `switchyard plan` again"
    )]
    Moved {
        /// The environment.
        env: String,
    },
    /// The environment kept changing while it was read.
    #[error("environment `{0}` kept changing while it was read; try again")]
    Busy(String),
    /// The evaluation API refused.
    #[error("evaluation API {status}: {message}")]
    Evaluation {
        /// The HTTP status.
        status: u16,
        /// The server's words.
        message: String,
    },
    /// A flag or segment the command names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Files that are not valid flags or segments, each problem with its file and path.
    #[error("invalid files, nothing was sent:\n{}", .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Files(Vec<String>),
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An argument is not usable.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// The process's exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Files(_) | CliError::Usage(_) => INVALID,
            CliError::Io { .. } => INVALID,
            _ => FAILED,
        }
    }
}
