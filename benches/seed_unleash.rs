//! Seeds a running switchyard-server with an Unleash features file, so the server
//! and Unleash Edge can be measured on the same flags (`benches/load/server-load.sh`).
//!
//! Reads the file (the client-API JSON, `{"version", "features", "segments"}`),
//! converts it with `switchyard_core::unleash::import`, and through the admin API
//! creates the environment, puts the segments, then the flags (a flag's
//! prerequisites before the flag, so the server validates each write against flags
//! it already has), and issues an sdk token for the environment. Prints
//! `SWITCHYARD_SDK_TOKEN=<token>` on stdout, progress on stderr; exits non-zero with
//! the reason when the file cannot be read or imported or a request fails.
//!
//! Run: `seed_unleash --url http://127.0.0.1:8080 --admin-token … --env bench
//! benches/fixtures/unleash-features.json`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use switchyard_core::unleash::{import, UnleashState};
use switchyard_core::Flag;
use switchyard_sdk::admin::{AdminClient, TokenKind};

/// Loads an Unleash features file into a switchyard-server environment.
#[derive(Debug, Parser)]
struct Args {
    /// The Unleash features file (`GET /api/client/features` format).
    file: PathBuf,
    /// The server's HTTP base URL.
    #[arg(long, env = "SWITCHYARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin token.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// The environment to create and fill.
    #[arg(long, env = "SWITCHYARD_ENV", default_value = "bench")]
    env: String,
    /// The name of the sdk token to issue (an existing token of that name is
    /// revoked and issued again, so the seed can be rerun).
    #[arg(long, default_value = "unleash-bench-sdk")]
    token_name: String,
}

/// The flags in an order where each flag's prerequisites (those in the list) come
/// before it. The import never produces cycles; should one appear, the rest keep
/// their order and the server reports the cycle.
fn prerequisites_first(mut pending: Vec<Flag>) -> Vec<Flag> {
    let keys: HashSet<String> = pending.iter().map(|f| f.key.as_str().to_owned()).collect();
    let mut done = HashSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let (ready, waiting): (Vec<Flag>, Vec<Flag>) = pending.into_iter().partition(|flag| {
            flag.prerequisites.iter().all(|p| {
                let key = p.flag.as_str();
                !keys.contains(key) || done.contains(key)
            })
        });
        if ready.is_empty() {
            ordered.extend(waiting);
            break;
        }
        done.extend(ready.iter().map(|f| f.key.as_str().to_owned()));
        ordered.extend(ready);
        pending = waiting;
    }
    ordered
}

/// Keys go into URL paths unescaped by the admin client.
fn check_key(what: &str, key: &str) -> Result<()> {
    if key.contains(['/', '?', '#', '%']) {
        bail!("{what} `{key}` contains `/`, `?`, `#` or `%`, which this seed cannot put in a URL path");
    }
    Ok(())
}

async fn run(args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let state: UnleashState = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not an Unleash features file (client-API JSON)",
            args.file.display()
        )
    })?;
    let (flags, segments) =
        import(&state).with_context(|| format!("importing {}", args.file.display()))?;
    for segment in &segments {
        check_key("segment", segment.key.as_str())?;
    }
    for flag in &flags {
        check_key("flag", flag.key.as_str())?;
    }

    let admin = AdminClient::new(&args.url, &args.admin_token)?;
    admin
        .create_env(&args.env)
        .await
        .with_context(|| format!("creating environment `{}` at {}", args.env, args.url))?;
    for segment in &segments {
        admin
            .put_segment(&args.env, segment)
            .await
            .with_context(|| format!("putting segment `{}`", segment.key.as_str()))?;
    }
    let count = flags.len();
    for flag in prerequisites_first(flags) {
        admin
            .put_flag(&args.env, &flag, None)
            .await
            .with_context(|| format!("putting flag `{}`", flag.key.as_str()))?;
    }
    eprintln!(
        "seed_unleash: {count} flags and {} segments from {} in `{}` at {}",
        segments.len(),
        args.file.display(),
        args.env,
        args.url
    );

    let issued = match admin
        .create_token(&args.token_name, TokenKind::Sdk, Some(&args.env))
        .await
    {
        Err(switchyard_sdk::Error::Api { status: 409, .. }) => {
            admin
                .delete_token(&args.token_name)
                .await
                .with_context(|| format!("revoking the old token `{}`", args.token_name))?;
            admin
                .create_token(&args.token_name, TokenKind::Sdk, Some(&args.env))
                .await
        }
        other => other,
    }
    .with_context(|| format!("issuing sdk token `{}`", args.token_name))?;
    println!("SWITCHYARD_SDK_TOKEN={}", issued.token);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seed_unleash: {error:#}");
            ExitCode::FAILURE
        }
    }
}
