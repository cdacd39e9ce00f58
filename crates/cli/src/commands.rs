//! Each subcommand, over the SDK's admin client.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_core::admin::{ApplyBody, NewSchedule, Schedule, ScheduledChange, TokenKind};
use switchyard_core::model::Serve;
use switchyard_core::{Flag, Segment};
use switchyard_sdk::admin::AdminClient;

use crate::args::{Args, Command, Envs, Flags, Kind, Output, Schedules, Segments, Sync, Tokens};
use crate::diff::{self, Plan};
use crate::error::{CliError, CHANGES};
use crate::files;
use crate::output::{print, table};

/// How often `audit --follow` asks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// The most entries the audit API answers at once: what `audit --follow` asks for.
const FOLLOW_PAGE: usize = 1000;
/// How far before the last entry seen `audit --follow` looks again: entries are timed
/// by the replica that wrote them, whose clock may be behind.
const FOLLOW_CLOCK_MARGIN_MS: u64 = 60_000;

/// Runs the command; the exit code when it did not fail.
pub async fn run(args: Args) -> Result<ExitCode, CliError> {
    let token = args.token.clone().ok_or_else(|| {
        CliError::Usage("an admin token is needed: --token or SWITCHYARD_TOKEN".into())
    })?;
    let client = AdminClient::with_ca(&args.url, token, args.ca_file.as_deref())?;
    let out = args.output;
    match args.command {
        Command::Envs(Envs::List) => {
            let envs = client.environments().await?;
            let mut rows = Vec::new();
            for env in &envs {
                let revision = client.revision(env).await?.unwrap_or_default();
                let flags = client.flags(env).await?.len();
                rows.push(json!({ "name": env, "revision": revision, "flags": flags }));
            }
            print(out, &rows, |rows| {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            text(&r["name"]),
                            r["revision"].to_string(),
                            r["flags"].to_string(),
                        ]
                    })
                    .collect();
                table(&["NAME", "REVISION", "FLAGS"], &cells)
            });
        }
        Command::Flags(command) => flags(&client, out, command).await?,
        Command::Segments(Segments::List { env }) => {
            let segments = client.segments(&env).await?;
            print(out, &segments, |segments| {
                let cells: Vec<Vec<String>> = segments
                    .iter()
                    .map(|s| {
                        vec![
                            s.key.to_string(),
                            s.version.to_string(),
                            s.description.clone(),
                        ]
                    })
                    .collect();
                table(&["KEY", "VERSION", "DESCRIPTION"], &cells)
            });
        }
        Command::Segments(Segments::Get { key, env }) => {
            let segment = client
                .segments(&env)
                .await?
                .into_iter()
                .find(|s| s.key.as_str() == key)
                .ok_or_else(|| {
                    CliError::NotFound(format!("segment `{key}` does not exist in `{env}`"))
                })?;
            print(out, &segment, files::to_yaml);
        }
        Command::Tokens(command) => tokens(&client, out, command).await?,
        Command::Schedule(command) => schedules(&client, out, command).await?,
        Command::Audit {
            env,
            flag,
            limit,
            follow,
        } => audit(&client, out, env, flag, limit, follow).await?,
        Command::Eval { flag, env, context } => {
            let context: Value = serde_json::from_str(&context)
                .map_err(|e| CliError::Usage(format!("--context is not JSON: {e}")))?;
            let http = http_client(args.ca_file.as_deref())?;
            let answer = evaluate(
                &http,
                &args.url,
                args.token.as_deref().unwrap_or_default(),
                &env,
                &flag,
                &context,
            )
            .await?;
            print(out, &answer, |a| {
                // The evaluation API answers the evaluation itself.
                let e = a;
                table(
                    &["FLAG", "VALUE", "VARIANT", "REASON", "RULE"],
                    &[vec![
                        flag.clone(),
                        e["value"].to_string(),
                        text(&e["variant"]),
                        text(&e["reason"]),
                        text(&e["rule_id"]),
                    ]],
                )
            });
        }
        Command::Export { env, dir } => {
            let (_, flags, segments) = read_env(&client, &env).await?;
            let (written, removed) = files::write(&dir, &flags, &segments)?;
            eprintln!(
                "exported `{env}`: {written} file(s) in {}{}",
                dir.display(),
                if removed > 0 {
                    format!(", {removed} file(s) of items no longer there removed")
                } else {
                    String::new()
                }
            );
        }
        Command::Plan(sync) => {
            let plan = plan(&client, &sync).await?;
            print(out, &plan, diff::words);
            if !plan.is_empty() {
                return Ok(ExitCode::from(CHANGES));
            }
        }
        Command::Apply {
            sync,
            reason,
            revision,
        } => apply(&client, out, &sync, reason, revision).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn flags(client: &AdminClient, out: Output, command: Flags) -> Result<(), CliError> {
    match command {
        Flags::List { env } => {
            let flags = client.flags(&env).await?;
            print(out, &flags, |flags| {
                let cells: Vec<Vec<String>> = flags
                    .iter()
                    .map(|f| {
                        vec![
                            f.key.to_string(),
                            if f.enabled { "on" } else { "killed" }.to_owned(),
                            f.version.to_string(),
                            serve_words(&f.default),
                            f.rules.len().to_string(),
                        ]
                    })
                    .collect();
                table(&["KEY", "STATE", "VERSION", "DEFAULT", "RULES"], &cells)
            });
        }
        Flags::Stale { env, days, after } => {
            let seconds = after.map_or(days * 86_400, |d| d.as_secs());
            let life = client.lifecycle(&env, Some(seconds)).await?;
            let stale: Vec<_> = life
                .flags
                .into_iter()
                .filter(|f| !f.stale.is_empty() || f.expired)
                .collect();
            print(out, &stale, |flags| {
                let cells: Vec<Vec<String>> = flags
                    .iter()
                    .map(|f| {
                        let mut why = f.stale.clone();
                        if f.expired {
                            why.push("expired".to_owned());
                        }
                        vec![
                            f.key.to_string(),
                            why.join(", "),
                            f.last_evaluated_ms.map_or_else(|| "never".to_owned(), time),
                            f.last_changed_ms
                                .map_or_else(|| "long ago".to_owned(), time),
                            f.serves_everyone.clone().unwrap_or_else(|| "-".to_owned()),
                            f.expires
                                .map_or_else(|| "-".to_owned(), |e| e.date().to_string()),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "KEY",
                        "WHY",
                        "LAST EVALUATED (UTC)",
                        "LAST CHANGED (UTC)",
                        "SERVES",
                        "EXPIRES",
                    ],
                    &cells,
                )
            });
        }
        Flags::Unknown { env } => {
            let life = client.lifecycle(&env, None).await?;
            print(out, &life.unknown, |unknown| {
                let cells: Vec<Vec<String>> = unknown
                    .iter()
                    .map(|u| vec![u.key.clone(), time(u.last_evaluated_ms)])
                    .collect();
                table(&["KEY", "LAST EVALUATED (UTC)"], &cells)
            });
        }
        Flags::Get { key, env } => {
            let flag = get_flag(client, &env, &key).await?.0;
            print(out, &flag, files::to_yaml);
        }
        Flags::Kill { key, env, reason } => {
            let flag = client.kill(&env, &key, &reason).await?;
            print(out, &flag, |f| {
                format!("killed `{}` in `{env}` (version {})\n", f.key, f.version)
            });
        }
        Flags::Revive { key, env, reason } => {
            let flag = client.revive(&env, &key, &reason).await?;
            print(out, &flag, |f| {
                format!("revived `{}` in `{env}` (version {})\n", f.key, f.version)
            });
        }
        Flags::Ramp {
            key,
            percent,
            env,
            rule,
        } => {
            // Read, ramp, write with If-Match: a write in between refuses this one.
            let (mut flag, version) = get_flag(client, &env, &key).await?;
            let changed = switchyard_core::ramp::set_to(&mut flag, rule.as_deref(), percent)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            let flag = if changed {
                client.put_flag(&env, &flag, Some(version)).await?.value
            } else {
                flag
            };
            let serve = match &rule {
                Some(id) => flag.rules.iter().find(|r| &r.id == id).map(|r| &r.serve),
                None => Some(&flag.default),
            };
            let words = serve.map(serve_words).unwrap_or_default();
            print(out, &flag, |f| {
                format!(
                    "`{}` in `{env}` {}: {words} (version {})\n",
                    f.key,
                    if changed {
                        "now serves"
                    } else {
                        "already serves"
                    },
                    f.version
                )
            });
        }
    }
    Ok(())
}

async fn tokens(client: &AdminClient, out: Output, command: Tokens) -> Result<(), CliError> {
    match command {
        Tokens::Create {
            name,
            kind,
            env,
            expires_in,
        } => {
            let kind = match kind {
                Kind::Admin => TokenKind::Admin,
                Kind::Sdk => TokenKind::Sdk,
                Kind::Eval => TokenKind::Eval,
            };
            let expires_ms =
                expires_in.map(|after| now_ms().saturating_add(after.as_millis() as u64));
            let issued = client
                .create_token_until(&name, kind, env.as_deref(), expires_ms)
                .await?;
            let value =
                json!({ "name": name, "token": issued.token, "expires_ms": issued.expires_ms });
            print(out, &value, |v| format!("{}\n", text(&v["token"])));
        }
        Tokens::Rotate { name, grace } => {
            let issued = client.rotate_token(&name, grace).await?;
            let value = json!({
                "name": name,
                "token": issued.token,
                "previous_valid_until_ms": issued.previous_valid_until_ms,
            });
            print(out, &value, |v| format!("{}\n", text(&v["token"])));
            match issued.previous_valid_until_ms {
                Some(until) => eprintln!("the old secret of `{name}` works until {}", time(until)),
                None => eprintln!("the old secret of `{name}` no longer works"),
            }
        }
        Tokens::List => {
            let tokens = client.tokens().await?;
            print(out, &tokens, |tokens| {
                let at = |value: &Value, otherwise: &str| {
                    value.as_u64().map_or_else(|| otherwise.to_owned(), time)
                };
                let cells: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        let expires = match at(&t["expires_ms"], "never") {
                            expires if t["expired"] == json!(true) => format!("expired {expires}"),
                            expires => expires,
                        };
                        vec![
                            text(&t["name"]),
                            text(&t["kind"]),
                            text(&t["env"]),
                            expires,
                            at(&t["last_used_ms"], "never"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "NAME",
                        "KIND",
                        "ENVIRONMENT",
                        "EXPIRES (UTC)",
                        "LAST USED (UTC)",
                    ],
                    &cells,
                )
            });
        }
        Tokens::Revoke { name } => {
            client.delete_token(&name).await?;
            eprintln!("revoked `{name}`");
        }
    }
    Ok(())
}

async fn schedules(client: &AdminClient, out: Output, command: Schedules) -> Result<(), CliError> {
    let show = |list: &[Schedule]| {
        let cells: Vec<Vec<String>> = list
            .iter()
            .map(|s| {
                let change = serde_json::to_value(&s.change).unwrap_or_default();
                let state = serde_json::to_value(&s.state).unwrap_or_default();
                vec![
                    s.id.clone(),
                    s.flag.to_string(),
                    time(s.at_ms),
                    text(&change["action"])
                        + &change["percent"]
                            .as_u64()
                            .map(|p| format!(" {p}%"))
                            .unwrap_or_default(),
                    text(&state["state"]),
                    s.created_by.clone(),
                ]
            })
            .collect();
        table(&["ID", "FLAG", "AT (UTC)", "CHANGE", "STATE", "BY"], &cells)
    };
    match command {
        Schedules::Create {
            flag,
            env,
            at,
            kill,
            revive,
            ramp,
            rule,
            flag_file,
            reason,
        } => {
            let change = match (kill, revive, ramp, flag_file) {
                (true, _, _, _) => ScheduledChange::Kill,
                (_, true, _, _) => ScheduledChange::Revive,
                (_, _, Some(percent), _) => ScheduledChange::Ramp { percent, rule },
                (_, _, _, Some(path)) => {
                    let replacement = files::read_flag(&path)?;
                    if replacement.key.as_str() != flag {
                        return Err(CliError::Usage(format!(
                            "--flag-file {}: its key `{}` is not the flag `{flag}`",
                            path.display(),
                            replacement.key
                        )));
                    }
                    ScheduledChange::Put {
                        flag: Box::new(replacement),
                    }
                }
                _ => {
                    return Err(CliError::Usage(
                        "say what: --kill, --revive, --ramp N or --flag-file PATH".into(),
                    ))
                }
            };
            let new = NewSchedule {
                flag: flag.as_str().into(),
                at_ms: at_ms(&at)?,
                change,
                reason,
            };
            let schedule = client.schedule(&env, &new).await?;
            print(out, &schedule, |s| show(std::slice::from_ref(s)));
        }
        Schedules::List { env } => {
            let list = client.schedules(&env).await?;
            print(out, &list, |l| show(l));
        }
        Schedules::Cancel { id, env } => {
            let schedule = client.cancel_schedule(&env, &id).await?;
            print(out, &schedule, |s| show(std::slice::from_ref(s)));
        }
    }
    Ok(())
}

/// `--at` in milliseconds since the epoch: RFC 3339, or `+DURATION` from now.
fn at_ms(at: &str) -> Result<u64, CliError> {
    let bad = |why: String| CliError::Usage(format!("--at `{at}`: {why}"));
    if let Some(after) = at.strip_prefix('+') {
        let after = humantime::parse_duration(after).map_err(|e| bad(e.to_string()))?;
        return Ok(now_ms().saturating_add(after.as_millis() as u64));
    }
    let when = chrono::DateTime::parse_from_rfc3339(at).map_err(|e| {
        bad(format!(
            "not RFC 3339 like 2026-12-24T09:00:00Z or +30m ({e})"
        ))
    })?;
    u64::try_from(when.timestamp_millis()).map_err(|_| bad("before 1970".into()))
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch as `2026-12-24 09:00:00`.
fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || ms.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

async fn audit(
    client: &AdminClient,
    out: Output,
    env: Option<String>,
    flag: Option<String>,
    limit: usize,
    follow: bool,
) -> Result<(), CliError> {
    let filters: Vec<String> = env
        .map(|e| format!("env={e}"))
        .into_iter()
        .chain(flag.map(|f| format!("flag={f}")))
        .collect();
    let query = |first: &[String]| {
        first
            .iter()
            .chain(&filters)
            .cloned()
            .collect::<Vec<_>>()
            .join("&")
    };
    let entries = client.audit(&query(&[format!("limit={limit}")])).await?;
    let show = |entries: &[Value]| {
        print(out, &entries.to_vec(), |entries| {
            let cells: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e["id"].to_string(),
                        text(&e["actor"]),
                        text(&e["env"]),
                        text(&e["action"]),
                        text(&e["target"]),
                        text(&e["reason"]),
                    ]
                })
                .collect();
            table(
                &["ID", "ACTOR", "ENV", "ACTION", "TARGET", "REASON"],
                &cells,
            )
        })
    };
    // Oldest first on screen, so the newest is at the bottom where `--follow` adds.
    let newest = |entries: &[Value]| {
        entries
            .first()
            .and_then(|e| Some((e["id"].as_u64()?, e["at_ms"].as_u64()?)))
    };
    let (mut last, mut last_ms) = newest(&entries).unwrap_or((0, 0));
    show(&entries.into_iter().rev().collect::<Vec<_>>());
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        // What came after the last entry seen, not the newest `--limit`: everything
        // since its time (less a margin for replicas' clocks) up to the API's page,
        // then only the ids after it.
        let after = query(&[
            format!("limit={FOLLOW_PAGE}"),
            format!("since={}", last_ms.saturating_sub(FOLLOW_CLOCK_MARGIN_MS)),
        ]);
        let newer: Vec<Value> = client
            .audit(&after)
            .await?
            .into_iter()
            .filter(|e| e["id"].as_u64().is_some_and(|id| id > last))
            .collect();
        if let Some((id, at_ms)) = newest(&newer) {
            (last, last_ms) = (id, at_ms.max(last_ms));
            show(&newer.into_iter().rev().collect::<Vec<_>>());
        }
    }
}

/// The environment's revision with every flag and segment at that revision: read
/// again while a write lands in between.
async fn read_env(
    client: &AdminClient,
    env: &str,
) -> Result<(u64, Vec<Flag>, Vec<Segment>), CliError> {
    for _ in 0..5 {
        let before = client
            .revision(env)
            .await?
            .ok_or_else(|| CliError::NotFound(format!("environment `{env}` does not exist")))?;
        let flags = client.flags(env).await?;
        let segments = client.segments(env).await?;
        if client.revision(env).await? == Some(before) {
            return Ok((before, flags, segments));
        }
    }
    Err(CliError::Busy(env.to_owned()))
}

async fn plan(client: &AdminClient, sync: &Sync) -> Result<Plan, CliError> {
    let files = files::read(&sync.dir)?;
    let (revision, flags, segments) = read_env(client, &sync.env).await?;
    Ok(diff::plan(
        &sync.env,
        revision,
        &files,
        (&flags, &segments),
        sync.prune,
    ))
}

async fn apply(
    client: &AdminClient,
    out: Output,
    sync: &Sync,
    reason: Option<String>,
    reviewed: Option<u64>,
) -> Result<(), CliError> {
    let files = files::read(&sync.dir)?;
    let (revision, flags, segments) = read_env(client, &sync.env).await?;
    if reviewed.is_some_and(|r| r != revision) {
        return Err(CliError::Moved {
            env: sync.env.clone(),
        });
    }
    let plan = diff::plan(&sync.env, revision, &files, (&flags, &segments), sync.prune);
    if plan.is_empty() {
        print(out, &plan, diff::words);
        return Ok(());
    }
    let touched = |kind: &str, key: &str| {
        plan.created.iter().any(|i| i.kind == kind && i.key == key)
            || plan.changed.iter().any(|c| c.kind == kind && c.key == key)
    };
    let deleted = |kind: &str| -> Vec<String> {
        plan.deleted
            .iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.key.clone())
            .collect()
    };
    let body = ApplyBody {
        flags: files
            .flags
            .iter()
            .filter(|(_, f)| touched("flag", f.key.as_str()))
            .map(|(_, f)| f.clone())
            .collect(),
        segments: files
            .segments
            .iter()
            .filter(|(_, s)| touched("segment", s.key.as_str()))
            .map(|(_, s)| s.clone())
            .collect(),
        delete_flags: deleted("flag").iter().map(|k| k.as_str().into()).collect(),
        delete_segments: deleted("segment")
            .iter()
            .map(|k| k.as_str().into())
            .collect(),
        reason,
    };
    let answer = match client.apply(&sync.env, &body, Some(revision)).await {
        Ok(answer) => answer,
        Err(switchyard_sdk::Error::Api { status: 412, .. }) => {
            return Err(CliError::Moved {
                env: sync.env.clone(),
            })
        }
        Err(e) => return Err(name_files(e, &body, &files)),
    };
    print(out, &answer, |a| {
        format!(
            "{}applied to `{}` as batch {}: revision {} → {} ({} created, {} changed, {} deleted)\n",
            diff::words(&plan),
            sync.env,
            a.batch,
            revision,
            a.revision,
            a.created.len(),
            a.changed.len(),
            a.deleted.len()
        )
    });
    Ok(())
}

/// The server's refusal with each item of the batch — `flags[2]` (its position) or
/// `flags[checkout]` (its key, in a problem of the whole environment) — named by its
/// file.
fn name_files(error: switchyard_sdk::Error, body: &ApplyBody, files: &files::Files) -> CliError {
    let switchyard_sdk::Error::Api {
        status,
        code,
        mut message,
    } = error
    else {
        return error.into();
    };
    let mut rename = |list: &str, i: usize, key: &str, file: &std::path::Path| {
        let file = file.display().to_string();
        message = message
            .replace(&format!("{list}[{i}]"), &file)
            .replace(&format!("{list}[{key}]"), &file);
    };
    // Highest positions first, so `flags[1]` does not rewrite part of `flags[12]`.
    for (i, flag) in body.flags.iter().enumerate().rev() {
        if let Some((file, _)) = files.flags.iter().find(|(_, f)| f.key == flag.key) {
            rename("flags", i, flag.key.as_str(), file);
        }
    }
    for (i, segment) in body.segments.iter().enumerate().rev() {
        if let Some((file, _)) = files.segments.iter().find(|(_, s)| s.key == segment.key) {
            rename("segments", i, segment.key.as_str(), file);
        }
    }
    CliError::Server(switchyard_sdk::Error::Api {
        status,
        code,
        message,
    })
}

async fn get_flag(client: &AdminClient, env: &str, key: &str) -> Result<(Flag, u64), CliError> {
    let versioned = client
        .flag(env, key)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("flag `{key}` does not exist in `{env}`")))?;
    Ok((versioned.value, versioned.version))
}

/// An HTTP client for the APIs the admin client does not cover (evaluation), trusting
/// what the admin client trusts: only the certificates in `--ca-file` when given (as
/// the SDK's `AdminClient::with_ca` does), otherwise the system's roots.
fn http_client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, CliError> {
    let builder = switchyard_sdk::tls::trusting(reqwest::Client::builder(), ca)?;
    Ok(builder.build().map_err(switchyard_sdk::Error::from)?)
}

/// `POST /v1/evaluate/{env}/{flag}` with the context.
async fn evaluate(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    env: &str,
    flag: &str,
    context: &Value,
) -> Result<Value, CliError> {
    let response = http
        .post(format!(
            "{}/v1/evaluate/{env}/{flag}",
            url.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .json(context)
        .send()
        .await
        .map_err(|e| CliError::Server(e.into()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(CliError::Evaluation {
            status: status.as_u16(),
            message: text(&body["error"]["message"]),
        });
    }
    Ok(body)
}

/// A serve in a few words: `on`, or `on 25% / off 75%`.
fn serve_words(serve: &Serve) -> String {
    match serve {
        Serve::Variant(v) => v.clone(),
        Serve::Rollout(r) => r
            .split
            .iter()
            .map(|s| format!("{} {}%", s.variant, f64::from(s.weight) / 1000.0))
            .collect::<Vec<_>>()
            .join(" / "),
    }
}

/// A JSON string as text (anything else as JSON, nothing as `-`).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}
