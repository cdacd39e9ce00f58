//! Loopback ports for servers a test starts.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Every port this process has handed out. A rig may stop its server and start it
/// again on the same port (`RedisProcess::restart`); while it is down the port is free,
/// and without this another test's rig could be handed it and take it first.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago (bound to port 0, read, released) and
/// that this process has not handed out before. Another process may take it before
/// the caller binds it; rigs that start a child on it retry with another port when
/// the child cannot bind.
pub fn free_port() -> u16 {
    unused_addr().port()
}

/// `127.0.0.1:PORT` where nothing listens (a port that was just free and that no
/// other rig of this process was given).
pub fn unused_addr() -> SocketAddr {
    const ATTEMPTS: usize = 1000;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
    panic!("no loopback port this process has not used yet after {ATTEMPTS} tries");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_handed_out_once() {
        let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 200);
    }
}
