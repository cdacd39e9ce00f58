//! Evaluates one core case in a loop, for counting instructions per evaluation under
//! callgrind (`benches/load/instructions.sh` runs it twice with different counts and
//! divides the difference, so setup cancels out). Instruction counts do not depend on
//! the machine's load, unlike the criterion medians.
//!
//! Usage: `instructions CASE ITERATIONS`, CASE one of complex, complex-fresh,
//! rollout, simple, disabled, unknown, all (every flag of the fixture per iteration),
//! or unleash-complex: `versus_unleash`'s complex case (the `complex` toggle of
//! `benches/fixtures/unleash-features.json`, imported, read through `verdict`).

use std::hint::black_box;

use switchyard_benches::fixtures;
use switchyard_core::unleash;
use switchyard_core::{evaluate, evaluate_all};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(case), Some(n)) = (args.next(), args.next()) else {
        eprintln!("usage: instructions CASE ITERATIONS");
        std::process::exit(2);
    };
    let n: u64 = n.parse().unwrap_or_else(|_| {
        eprintln!("ITERATIONS must be a whole number, not {n:?}");
        std::process::exit(2);
    });
    if case == "unleash-complex" {
        let fixtures::Unleash {
            snapshot,
            context: ctx,
            ..
        } = fixtures::unleash();
        let enabled = (0..n)
            .filter(|_| {
                let evaluation = evaluate(black_box(&snapshot), black_box("complex"), &ctx);
                unleash::verdict(&evaluation).enabled
            })
            .count();
        println!("{case}: enabled in {enabled} of {n}");
        return;
    }
    let core = fixtures::core();
    let (snapshot, ctx) = (&core.snapshot, &core.context);
    let key = match case.as_str() {
        "complex" | "complex-fresh" => "checkout-v3",
        "rollout" | "simple" | "disabled" | "unknown" => case.as_str(),
        "all" => "",
        other => {
            eprintln!("unknown case {other:?}");
            std::process::exit(2);
        }
    };
    let mut served = 0_u64;
    for _ in 0..n {
        served += match case.as_str() {
            "all" => evaluate_all(black_box(snapshot), black_box(ctx))
                .filter(|(_, e)| e.variant.is_some())
                .count() as u64,
            "complex-fresh" => {
                let fresh = ctx.clone();
                u64::from(
                    evaluate(black_box(snapshot), black_box(key), &fresh)
                        .variant
                        .is_some(),
                )
            }
            _ => u64::from(
                evaluate(black_box(snapshot), black_box(key), black_box(ctx))
                    .variant
                    .is_some(),
            ),
        };
    }
    println!("{case}: {served} of {n} served a variant");
}
