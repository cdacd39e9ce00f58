//! The web console's server time at 10 000 flags: building and rendering the flag list
//! page (one page of 50 of the 10 000, in two environments side by side, sorted) and a
//! flag's detail page (rules, rollout slider, JSON editor), as the handlers do.
//!
//! Run: `cargo bench -p switchyard-benches --bench console`

use std::hint::black_box;

use askama::Template;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use switchyard_core::model::{EnvName, FlagKey};
use switchyard_core::Flag;
use switchyard_server::auth::Principal;
use switchyard_server::console::flag::{detail_page, Outcome};
use switchyard_server::console::flags::{list_page, ListQuery};
use switchyard_server::console::session::Viewer;
use switchyard_server::environments::Change;
use switchyard_server::state::AppState;
use switchyard_server::store::TokenKind;
use switchyard_server::Server;

const FLAGS: usize = 10_000;

fn flag(n: usize) -> Flag {
    serde_json::from_value(json!({
        "key": format!("flag-{n:05}"), "kind": "boolean",
        "description": format!("Flag number {n}"),
        "variants": {"on": true, "off": false}, "off_variant": "off",
        "rules": [
            {"id": "staff", "when": {"groups": ["staff"]}, "serve": {"variant": "on"}},
            {"id": "eu", "when": {"constraints": [
                {"attribute": "country", "op": "in", "values": ["IT", "DE", "FR"]},
                {"attribute": "version", "op": "semver_gte", "values": ["2.1.0"]}]},
             "serve": {"variant": "on"}}],
        "default": {"rollout": {"split": [{"variant": "on", "weight": 30_000},
                                          {"variant": "off", "weight": 70_000}]}},
        "tags": [format!("team-{}", n % 20)]
    }))
    .expect("flag")
}

fn setup(runtime: &tokio::runtime::Runtime) -> (AppState, tempfile::TempDir) {
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("dir");
        let server = Server::open_embedded(dir.path(), Some("bench-admin-token-0123456789"))
            .await
            .expect("server");
        let state = server.state.clone();
        for env in ["production", "staging"] {
            state
                .envs
                .create(&EnvName::new(env), "bench")
                .await
                .expect("env");
            state
                .envs
                .apply(env, |_| {
                    Ok(Change {
                        flags: (0..FLAGS)
                            .map(|n| (FlagKey::new(format!("flag-{n:05}")), Some(flag(n))))
                            .collect(),
                        ..Change::default()
                    })
                })
                .await
                .expect("flags");
        }
        (state, dir)
    })
}

fn console(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (state, _dir) = setup(&runtime);
    let viewer = Viewer {
        session: String::new(),
        principal: Principal {
            name: "bench".into(),
            token_id: None,
            kind: TokenKind::Admin,
            env: None,
            credential: None,
        },
        csrf: "0".repeat(64),
    };
    let mut group = c.benchmark_group("console_10k_flags");
    group.bench_function("flag_list_page", |b| {
        b.iter(|| {
            let page =
                list_page(&state, &viewer, "production", ListQuery::default()).expect("page");
            black_box(page.render().expect("html"))
        });
    });
    group.bench_function("flag_list_search", |b| {
        b.iter(|| {
            let query = ListQuery {
                q: "number 99".into(),
                tag: "team-3".into(),
                ..ListQuery::default()
            };
            let page = list_page(&state, &viewer, "production", query).expect("page");
            black_box(page.render().expect("html"))
        });
    });
    group.bench_function("flag_detail_page", |b| {
        b.iter(|| {
            let page = detail_page(
                &state,
                &viewer,
                "production",
                "flag-04242",
                Outcome::default(),
            )
            .expect("page");
            black_box(page.render().expect("html"))
        });
    });
    group.finish();
}

criterion_group!(benches, console);
criterion_main!(benches);
