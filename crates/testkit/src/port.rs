//! Loopback ports for servers a test starts.

use std::net::{SocketAddr, TcpListener};

/// A loopback port that was free a moment ago (bound to port 0, read, released).
/// Another process may take it before the caller binds it; rigs that start a child
/// on it retry with another port when the child cannot bind.
pub fn free_port() -> u16 {
    unused_addr().port()
}

/// `127.0.0.1:PORT` where nothing listens (a port that was just free).
pub fn unused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr")
}
