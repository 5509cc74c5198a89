//! The stable fuzz runner (test tooling, CI): for each target, replays its checked-in corpus,
//! then runs seeded random mutations of it for a time budget, catching panics. A crash is saved
//! under `fuzz/artifacts/<target>/` and fails the run; executions per target are printed.
//!
//! `cargo run -p onair-fuzz --bin fuzz-stable -- [--seconds N] [--seed S] [--max-len N] [TARGET...]`

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use onair_fuzz::mutate::Mutator;
use onair_fuzz::{TARGETS, Target, corpus};

struct Options {
    seconds: f64,
    seed: u64,
    max_len: usize,
    targets: Vec<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 3.0,
        seed: 0x0a1a_2024,
        max_len: 4096,
        targets: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                o.seconds = value("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds: a number")?
            }
            "--seed" => o.seed = value("--seed")?.parse().map_err(|_| "--seed: an integer")?,
            "--max-len" => {
                o.max_len = value("--max-len")?
                    .parse()
                    .map_err(|_| "--max-len: an integer")?
            }
            name if TARGETS.iter().any(|(t, _)| *t == name) => o.targets.push(name.to_owned()),
            other => {
                let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
                return Err(format!("unknown argument `{other}`; targets: {names:?}"));
            }
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("fuzz-stable: {e}");
            return ExitCode::from(2);
        }
    };
    let mut failed = false;
    for (name, target) in TARGETS {
        if !o.targets.is_empty() && !o.targets.iter().any(|t| t == name) {
            continue;
        }
        if let Err(input) = run(name, *target, &o) {
            failed = true;
            let dir = corpus::root().join("artifacts").join(name);
            let path = dir.join(format!("crash-{:016x}", fnv(&input)));
            let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &input));
            eprintln!(
                "fuzz-stable: {name} CRASHED on {} bytes ({}): {}",
                input.len(),
                match saved {
                    Ok(()) => path.display().to_string(),
                    Err(e) => format!("not saved: {e}"),
                },
                hex(&input)
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Replays the corpus, then mutates for the budget. `Err` carries the crashing input.
fn run(name: &str, target: Target, o: &Options) -> Result<(), Vec<u8>> {
    let seeds: Vec<Vec<u8>> = corpus::load(name).into_iter().map(|(_, b)| b).collect();
    for input in &seeds {
        execute(target, input)?;
    }
    let mut pool = if seeds.is_empty() {
        vec![Vec::new()]
    } else {
        seeds.clone()
    };
    let seed = o.seed ^ fnv(name.as_bytes());
    let mut mutator = Mutator::new(seed, corpus::dictionary(name), o.max_len);
    let start = Instant::now();
    let budget = Duration::from_secs_f64(o.seconds.max(0.0));
    let mut execs = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            let pick = mutator.rng().below(pool.len());
            let other = mutator.rng().below(pool.len());
            let mut input = pool[pick].clone();
            mutator.mutate(&mut input, &pool[other]);
            execute(target, &input)?;
            execs += 1;
            // Keep some mutants so mutations stack up over the run (bounded pool).
            if mutator.rng().below(16) == 0 {
                if pool.len() < 512 {
                    pool.push(input);
                } else {
                    let slot = seeds.len() + mutator.rng().below(pool.len() - seeds.len());
                    pool[slot] = input;
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz-stable: {name}: {} corpus inputs, {execs} mutated executions in {secs:.1} s ({:.0}/s), seed {seed}",
        seeds.len(),
        execs as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn execute(target: Target, input: &[u8]) -> Result<(), Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| target(input))).map_err(|_| input.to_vec())
}

/// FNV-1a, for stable artifact names and per-target seeds.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 256 {
        format!("{shown}...")
    } else {
        shown
    }
}
