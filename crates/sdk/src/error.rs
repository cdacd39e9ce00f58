//! The SDK's errors.

/// Why the client could not be built or a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the token (401/403).
    #[error("the server refused the token ({status}): {message}")]
    Unauthorized {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or answered unexpectedly, and no bootstrap
    /// was given.
    #[error("could not load flags from {url}: {source}")]
    Unreachable {
        /// The server.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The first snapshot did not arrive within the initial-sync timeout.
    #[error("no snapshot from {url} within {timeout:?}")]
    Timeout {
        /// The server.
        url: String,
        /// The bound.
        timeout: std::time::Duration,
    },
    /// A snapshot or bootstrap document could not be used.
    #[error("invalid flag document: {0}")]
    InvalidDocument(String),
    /// Reading a bootstrap file failed.
    #[error("reading bootstrap file {path}: {source}")]
    Bootstrap {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An admin API call failed.
    #[error("admin API {status}: {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A name that no URL can carry as a path segment (`.` or `..`: URL parsers fold
    /// them into the path); the server would refuse it anyway.
    #[error("`{0}` cannot be a name: names are 1 to 256 of A-Z a-z 0-9 _ . : ~ -, starting with a letter, digit or _")]
    InvalidName(String),
    /// A transport error on an admin API call.
    #[error("admin API request failed: {0}")]
    Http(#[from] reqwest::Error),
}
