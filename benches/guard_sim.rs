//! `guard_sim`: the guarded rollout's statistics under simulation (docs/guard.md).
//!
//! Simulates releases that ramp a flag 10 → 25 → 50 % with 10 one-minute looks per step
//! (30 looks), 2 000 new units a minute and a 2 % event rate, and judges every look with
//!
//! - **the sequential test** (`switchyard_core::guard`): distinct units counted with real
//!   HyperLogLog sketches since the step started, the mixture SPRT at `α / 3` per step,
//!   and the sample-ratio check at p < 0.001;
//! - **the previous test** (the orchestrator's guard before it): a Wald z-test on
//!   per-evaluation counts over a sliding 10-minute window, at every look.
//!
//! Both see the same simulated data. Deterministic: release `i` of a scenario draws from
//! `StdRng::seed_from_u64(seed ^ i)`. Run it in release mode (it takes a few minutes):
//!
//! ```text
//! cargo run --release -p switchyard-benches --bin guard_sim -- --releases 10000
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_core::guard::sketch::{UnitSketch, RELATIVE_ERROR};
use switchyard_core::guard::{rates, sample_ratio, sample_ratio_p_value, Design, UnitCounts};

#[derive(Parser)]
#[command(about = "Simulates guarded releases: false rollbacks, power, sample-ratio checks")]
struct Args {
    /// Releases per scenario.
    #[arg(long, default_value_t = 10_000)]
    releases: u64,
    /// The base seed.
    #[arg(long, default_value_t = 20261205)]
    seed: u64,
    /// The relative effect the mixture is tuned to (the plan's `mixture`).
    #[arg(long, default_value_t = 1.0)]
    mixture: f64,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: u64,
}

const STEPS: [f64; 3] = [0.10, 0.25, 0.50];
const LOOKS_PER_STEP: u32 = 10;
const UNITS_PER_MINUTE: u32 = 2_000;
const BASE_RATE: f64 = 0.02;
const CONFIDENCE: f64 = 0.95;
const MIN_UNITS: u64 = 100;
const SRM_LEVEL: f64 = 0.001;
/// The previous test's window, in looks (minutes).
const WINDOW: usize = 10;

/// One simulated world.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    /// The plan's `max_relative_increase`.
    limit: f64,
    /// Exposures and events of a unit that had the event (it retries).
    retries: u32,
    /// The treatment's event rate over the control's (1 = A/A).
    effect: f64,
    /// The share of treatment units that go missing from the counts (0 = none).
    skew: f64,
    /// Hold one share for one step of looks instead of the ramp.
    hold: Option<f64>,
    /// New units a minute.
    units_per_minute: u32,
}

/// At which look (1-based) each rule first fired, if it did.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    sequential: Option<u32>,
    previous: Option<u32>,
    srm: Option<u32>,
    /// Whether one chi-square test at the last look alone would find a mismatch: the most
    /// any test at that horizon can find, and a bound for the sequential check.
    srm_single_at_end: bool,
}

/// Per-evaluation counts of one minute, for the previous test.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    exposures: [u64; 2],
    events: [u64; 2],
}

fn simulate(s: &Scenario, mixture: f64, rng: &mut StdRng) -> Outcome {
    let mut outcome = Outcome::default();
    let mut window: VecDeque<Counts> = VecDeque::with_capacity(WINDOW + 1);
    let design = Design {
        max_relative_increase: s.limit,
        alpha: (1.0 - CONFIDENCE) / STEPS.len() as f64,
        mixture,
        count_error: RELATIVE_ERROR,
    };
    let mut look = 0;
    let steps = match s.hold {
        Some(share) => vec![share],
        None => STEPS.to_vec(),
    };
    let last_look = LOOKS_PER_STEP * steps.len() as u32;
    for share in steps {
        // [treatment, control] sketches of exposed units and units with the event.
        let mut exposed = [UnitSketch::new(), UnitSketch::new()];
        let mut had_event = [UnitSketch::new(), UnitSketch::new()];
        for _ in 0..LOOKS_PER_STEP {
            look += 1;
            let mut minute = Counts::default();
            for _ in 0..s.units_per_minute {
                let unit: u64 = rng.gen();
                let treated = rng.gen::<f64>() < share;
                if treated && rng.gen::<f64>() < s.skew {
                    continue;
                }
                let arm = usize::from(!treated);
                let rate = if treated {
                    BASE_RATE * s.effect
                } else {
                    BASE_RATE
                };
                let event = rng.gen::<f64>() < rate;
                let times = if event { s.retries } else { 1 };
                for _ in 0..times {
                    exposed[arm].insert_hash(unit);
                    if event {
                        had_event[arm].insert_hash(unit);
                    }
                }
                minute.exposures[arm] += u64::from(times);
                minute.events[arm] += if event { u64::from(times) } else { 0 };
            }
            window.push_back(minute);
            if window.len() > WINDOW {
                window.pop_front();
            }
            if outcome.previous.is_none() && previous_fails(&window, s.limit) {
                outcome.previous = Some(look);
            }
            let arm = |i: usize| UnitCounts {
                units: exposed[i].count(),
                with_event: had_event[i].count(),
            };
            let (t, c) = (arm(0), arm(1));
            if t.units < MIN_UNITS || c.units < MIN_UNITS {
                continue;
            }
            if look == last_look {
                outcome.srm_single_at_end =
                    sample_ratio_p_value(t.units, c.units, share, RELATIVE_ERROR)
                        .is_some_and(|p| p < SRM_LEVEL);
            }
            if outcome.srm.is_none() {
                let check = sample_ratio(t.units, c.units, share, RELATIVE_ERROR, SRM_LEVEL);
                if check.is_some_and(|c| c.mismatch) {
                    outcome.srm = Some(look);
                }
            }
            if outcome.sequential.is_none() && rates(t, c, &design).fails {
                outcome.sequential = Some(look);
            }
        }
    }
    outcome
}

/// The previous guard: Wald z on events per exposure (capped at 1) over the window,
/// `min_samples` exposures per arm, one-sided at the confidence.
fn previous_fails(window: &VecDeque<Counts>, limit: f64) -> bool {
    let sum = |f: &dyn Fn(&Counts) -> u64| window.iter().map(f).sum::<u64>();
    let (n_t, n_c) = (sum(&|c| c.exposures[0]), sum(&|c| c.exposures[1]));
    if n_t < MIN_UNITS || n_c < MIN_UNITS {
        return false;
    }
    let p_t = (sum(&|c| c.events[0]) as f64 / n_t as f64).min(1.0);
    let p_c = (sum(&|c| c.events[1]) as f64 / n_c as f64).min(1.0);
    let k = 1.0 + limit;
    let d = p_t - k * p_c;
    let variance = p_t * (1.0 - p_t) / n_t as f64 + k * k * p_c * (1.0 - p_c) / n_c as f64;
    let z = if variance > 0.0 {
        d / variance.sqrt()
    } else if d > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    z > 1.644_853_626_951_472_2
}

fn run(s: &Scenario, args: &Args) -> Vec<Outcome> {
    let started = Instant::now();
    let threads = args.threads.max(1);
    let mut outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..args.releases)
                        .step_by(threads as usize)
                        .map(|i| {
                            simulate(s, args.mixture, &mut StdRng::seed_from_u64(args.seed ^ i))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    outcomes.truncate(args.releases as usize);
    eprintln!(
        "  {}: {} releases in {:.1}s",
        s.name,
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    outcomes
}

/// The share of `hits` in `n`, in percent, and the upper end of its 95 % Wilson interval.
fn share_of(hits: usize, n: usize) -> (f64, f64) {
    let (k, n) = (hits as f64, n.max(1) as f64);
    let p = k / n;
    let z = 1.959_963_984_540_054;
    let centre = p + z * z / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (100.0 * p, 100.0 * (centre + spread) / (1.0 + z * z / n))
}

fn median(mut looks: Vec<u32>) -> String {
    if looks.is_empty() {
        return "—".into();
    }
    looks.sort_unstable();
    format!("{}", looks[looks.len() / 2])
}

fn main() {
    let args = Args::parse();
    println!(
        "Simulated with `cargo run --release -p switchyard-benches --bin guard_sim -- \
         --releases {} --seed {}`: steps 10/25/50 % × {LOOKS_PER_STEP} one-minute looks, \
         {UNITS_PER_MINUTE} units/min, {} % event rate, confidence {CONFIDENCE}, \
         min {MIN_UNITS} units per arm, mixture {}, SRM at p < {SRM_LEVEL}.\n",
        args.releases,
        args.seed,
        BASE_RATE * 100.0,
        args.mixture
    );

    println!("### A/A: healthy releases rolled back (30 looks each)\n");
    println!("| max_relative_increase | retries | sequential test | upper 95 % | previous test | SRM flagged |");
    println!("|---|---|---|---|---|---|");
    for (limit, retries) in [(0.1, 1), (0.1, 3), (0.0, 1), (0.0, 3)] {
        let s = Scenario {
            name: "A/A",
            limit,
            retries,
            effect: 1.0,
            skew: 0.0,
            hold: None,
            units_per_minute: UNITS_PER_MINUTE,
        };
        let out = run(&s, &args);
        let n = out.len();
        let (seq, seq_upper) = share_of(out.iter().filter(|o| o.sequential.is_some()).count(), n);
        let (prev, _) = share_of(out.iter().filter(|o| o.previous.is_some()).count(), n);
        let (srm, _) = share_of(out.iter().filter(|o| o.srm.is_some()).count(), n);
        println!(
            "| {limit} | ×{retries} | {seq:.2} % | {seq_upper:.2} % | {prev:.2} % | {srm:.2} % |"
        );
    }

    println!("\n### Power: the treatment's event rate doubled (2 % → 4 %)\n");
    println!(
        "| max_relative_increase | test | detected | within 10 min | median minutes to rollback |"
    );
    println!("|---|---|---|---|---|");
    for limit in [0.1, 0.0] {
        let s = Scenario {
            name: "power",
            limit,
            retries: 1,
            effect: 2.0,
            skew: 0.0,
            hold: None,
            units_per_minute: UNITS_PER_MINUTE,
        };
        let out = run(&s, &args);
        let n = out.len();
        for (name, looks) in [
            (
                "sequential",
                out.iter().filter_map(|o| o.sequential).collect::<Vec<_>>(),
            ),
            (
                "previous",
                out.iter().filter_map(|o| o.previous).collect::<Vec<_>>(),
            ),
        ] {
            let (detected, _) = share_of(looks.len(), n);
            let (early, _) = share_of(looks.iter().filter(|l| **l <= 10).count(), n);
            println!(
                "| {limit} | {name} | {detected:.2} % | {early:.2} % | {} |",
                median(looks)
            );
        }
    }

    println!("\n### Sample-ratio check: 10 % of the treatment's units missing\n");
    println!(
        "One step of {LOOKS_PER_STEP} looks at a held share. *One test at look {LOOKS_PER_STEP}*: \
         a single chi-square test on the same counts at the last look only, at the same \
         level: what a test that looks once, at the end, finds — the yardstick for a \
         check that may stop at any look.\n"
    );
    println!("| units/min | ramp share | flagged within {LOOKS_PER_STEP} looks | one test at look {LOOKS_PER_STEP} |");
    println!("|---|---|---|---|");
    for units_per_minute in [UNITS_PER_MINUTE, 5 * UNITS_PER_MINUTE] {
        for share in STEPS {
            let s = Scenario {
                name: "SRM",
                limit: 0.1,
                retries: 1,
                effect: 1.0,
                skew: 0.1,
                hold: Some(share),
                units_per_minute,
            };
            let out = run(&s, &args);
            let n = out.len();
            let (flagged, _) = share_of(out.iter().filter(|o| o.srm.is_some()).count(), n);
            let (single, _) = share_of(out.iter().filter(|o| o.srm_single_at_end).count(), n);
            println!(
                "| {units_per_minute} | {:.0} % | {flagged:.2} % | {single:.2} % |",
                share * 100.0
            );
        }
    }
}
