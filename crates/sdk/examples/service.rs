//! An example service: an axum handler that branches on a flag evaluated locally.
//!
//! ```sh
//! cargo run --release -p switchyard-server -- --demo        # prints an SDK token
//! SWITCHYARD_URL=http://127.0.0.1:8080 SWITCHYARD_SDK_TOKEN=swy_... \
//!   cargo run -p switchyard-sdk --example service
//! curl 'http://127.0.0.1:3000/checkout?user=user-42'
//! ```

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use switchyard_sdk::{Client, Context};

#[derive(Deserialize)]
struct Visitor {
    user: String,
    #[serde(default)]
    group: Option<String>,
}

async fn checkout(State(flags): State<Client>, Query(visitor): Query<Visitor>) -> String {
    let mut ctx = Context::new(visitor.user.as_str());
    if let Some(group) = visitor.group {
        ctx = ctx.group(group);
    }
    // Evaluated in memory: no network call on the request path.
    if flags.is_enabled("new-checkout", &ctx) {
        format!("{}: the new checkout\n", visitor.user)
    } else {
        format!("{}: the classic checkout\n", visitor.user)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url =
        std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    let token = std::env::var("SWITCHYARD_SDK_TOKEN")?;
    let flags = Client::builder(url, token).build().await?;
    flags.on_change(|change| {
        eprintln!(
            "flags changed: revision {} ({:?})",
            change.revision, change.flags
        )
    });
    let app = Router::new()
        .route("/checkout", get(checkout))
        .with_state(flags.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("listening on http://127.0.0.1:3000/checkout?user=user-42");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    flags.close().await;
    Ok(())
}
