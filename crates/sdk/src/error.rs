//! The SDK's errors.

/// Why the client could not be built or a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The CA file given for HTTPS could not be read or holds no PEM certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
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
    /// A snapshot, change or bootstrap document could not be used.
    #[error("invalid flag document: {0}")]
    InvalidDocument(#[source] DocumentError),
    /// An offline client ([`crate::Transport::Offline`]) was built without a bootstrap
    /// document: it would have no flags to serve.
    #[error("an offline client needs a bootstrap document")]
    NoBootstrap,
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
    /// A transport error on an admin API call (connecting, sending, reading the body).
    #[error("admin API request failed: {0}")]
    Transport(#[source] TransportError),
}

/// Why a flag document (snapshot, change or bootstrap) could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Not the shape of the document; the message names the field that is wrong
    /// (`flags[2].variants: …`).
    #[error("{0}")]
    Shape(#[from] serde_path_to_error::Error<serde_json::Error>),
    /// A bootstrap file that is not JSON.
    #[error("{path}: {source}")]
    NotJson {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Well-formed, but its flags or segments do not pass validation.
    #[error("{0}")]
    Invalid(#[from] switchyard_core::ValidationErrors),
}

impl From<DocumentError> for Error {
    fn from(error: DocumentError) -> Error {
        Error::InvalidDocument(error)
    }
}

/// A transport failure on an admin API call. Opaque, so the HTTP client the SDK uses
/// is not part of its API; [`std::error::Error::source`] leads to the cause.
#[derive(Debug)]
pub struct TransportError(reqwest::Error);

impl TransportError {
    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        self.0.is_timeout()
    }

    /// Whether the connection could not be made.
    pub fn is_connect(&self) -> bool {
        self.0.is_connect()
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    // The wrapped error's own message is this one's Display; its cause comes next.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Error {
        Error::Transport(TransportError(error))
    }
}
