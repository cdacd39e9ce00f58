//! An axum app served on a free loopback port: the stand-in upstreams, exporters and
//! fake APIs tests put behind the code under test. Stopped when dropped.

use std::net::SocketAddr;

/// An app being served. Dropping it stops serving.
pub struct Served {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// Binds a free loopback port and serves `app` on it; it accepts connections when
/// this returns. Panics (in the serving task) if serving fails.
pub async fn serve(app: axum::Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .unwrap_or_else(|error| panic!("serving on {addr}: {error}"));
    });
    Served { addr, task }
}

impl Served {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}
