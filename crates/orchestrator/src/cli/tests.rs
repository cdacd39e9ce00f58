use super::render::table;
use super::*;

#[test]
fn progress_bar_fills_in_twentieths() {
    for (weight, bar) in [
        (0, "[....................] 0%"),
        (25, "[#####...............] 25%"),
        (50, "[##########..........] 50%"),
        (100, "[####################] 100%"),
        (250, "[####################] 100%"),
    ] {
        assert_eq!(progress_bar(weight), bar, "weight {weight}");
    }
}

#[test]
fn table_pads_columns() {
    let rows = vec![
        vec!["A".to_owned(), "BB".to_owned(), "C".to_owned()],
        vec!["long".to_owned(), "x".to_owned(), "tail".to_owned()],
    ];
    assert_eq!(table(&rows), "A     BB  C\nlong  x   tail\n");
}

#[test]
fn plan_errors_exit_2_refusals_1_and_unknown_outcomes_3() {
    let invalid = CliError::InvalidPlan(Vec::new());
    assert_eq!(invalid.exit_code(), ExitCode::from(2));
    let refused = CliError::Api {
        status: 409,
        code: "refused".into(),
        message: "nothing is paused".into(),
    };
    assert_eq!(refused.exit_code(), ExitCode::from(1));
    assert_eq!(refused.to_string(), "nothing is paused");
    // The outcome is unknown: 3, whatever the release did.
    let timeout = CliError::Timeout {
        name: "r".into(),
        after: Duration::from_secs(1),
    };
    assert_eq!(timeout.exit_code(), ExitCode::from(3));
    let lost = CliError::LostDaemon {
        name: "r".into(),
        after: Duration::from_secs(1),
        source: Box::new(CliError::Api {
            status: 502,
            code: "bad_gateway".into(),
            message: "proxy".into(),
        }),
    };
    assert_eq!(lost.exit_code(), ExitCode::from(3));
    assert!(!refused.is_transient());
}

fn parse(args: &[&str]) -> Result<ClientCommand, clap::Error> {
    let cli = Cli::try_parse_from(
        std::iter::once("switchyard-orchestrator").chain(args.iter().copied()),
    )?;
    match cli.command {
        Command::Client(command) => Ok(command),
        Command::Serve(_) => panic!("{args:?} parsed as serve"),
    }
}

#[test]
fn report_takes_a_name_or_dora_and_history_a_limit() {
    match parse(&["report", "--dora"]) {
        Ok(ClientCommand::Report {
            name: None,
            dora: true,
            window: None,
            format: ReportFormat::Markdown,
            notes: false,
            template: None,
        }) => {}
        other => panic!("{other:?}"),
    }
    match parse(&["report", "--dora", "--window", "2weeks", "--format", "json"]) {
        Ok(ClientCommand::Report {
            dora: true,
            window: Some(window),
            format: ReportFormat::Json,
            ..
        }) => assert_eq!(window, Duration::from_secs(14 * 86_400)),
        other => panic!("{other:?}"),
    }
    match parse(&["report", "checkout"]) {
        Ok(ClientCommand::Report {
            name: Some(name),
            dora: false,
            ..
        }) => assert_eq!(name, "checkout"),
        other => panic!("{other:?}"),
    }
    match parse(&["history"]) {
        Ok(ClientCommand::History { limit: 50 }) => {}
        other => panic!("{other:?}"),
    }
    match parse(&["history", "--limit", "1000"]) {
        Ok(ClientCommand::History { limit: 1000 }) => {}
        other => panic!("{other:?}"),
    }
    for args in [
        &["report"][..],
        &["report", "checkout", "--dora"],
        &["report", "checkout", "--window", "30d"],
        &["report", "--dora", "--window", "30m"],
        &["report", "--dora", "--window", "soon"],
        &["history", "--limit", "0"],
        &["history", "--limit", "1001"],
    ] {
        let error = parse(args).expect_err(&format!("{args:?}"));
        assert_eq!(error.exit_code(), 2, "{args:?}");
    }
    assert_eq!(
        CliError::Usage("give a release NAME".into()).exit_code(),
        ExitCode::from(2)
    );
}

#[test]
fn history_is_a_table_newest_first() {
    let summary = |name: &str,
                   phase: Phase,
                   times: (Option<Millis>, Option<Millis>),
                   reason: Option<&str>| {
        ReleaseSummary {
            name: name.into(),
            environment: String::new(),
            phase,
            created_at: 0,
            summary: String::new(),
            services: vec![],
            environments: vec!["staging".into(), "production".into()],
            started_at: times.0,
            finished_at: times.1,
            reason: reason.map(str::to_owned),
            time_to_restore_seconds: None,
            hotfix: None,
        }
    };
    // 2024-05-01T10:40:00Z.
    const START: Millis = 1_714_560_000_000;
    let releases = [
        summary(
            "checkout-v4",
            Phase::Running,
            (Some(START + 7_200_000), None),
            None,
        ),
        summary(
            "checkout-v3",
            Phase::RolledBack,
            (Some(START), Some(START + 90_250)),
            Some("aborted by ana: red\nsee #ops"),
        ),
        summary(
            "checkout-v2",
            Phase::Succeeded,
            (Some(START - 1), Some(START + 1_499)),
            None,
        ),
        summary("checkout-v1", Phase::Pending, (None, None), None),
    ];
    assert_eq!(
        render_history(&releases),
        "NAME         ENVIRONMENT         OUTCOME      STARTED (UTC)        DURATION  REASON\n\
         checkout-v4  staging,production  running      2024-05-01 12:40:00  -         -\n\
         checkout-v3  staging,production  rolled back  2024-05-01 10:40:00  1m 30s    aborted by ana: red see #ops\n\
         checkout-v2  staging,production  promoted     2024-05-01 10:39:59  1s 500ms  -\n\
         checkout-v1  staging,production  pending      -                    -         -\n"
    );
    assert_eq!(render_history(&[]), "no releases\n");
}
