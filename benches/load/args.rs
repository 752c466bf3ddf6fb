//! The command line (see `usage.txt`).

use crate::{faults, fleet};

pub struct Args {
    pub quick: bool,
    pub pg_url: Option<String>,
    pub redis_url: Option<String>,
    pub only: Option<Vec<u8>>,
    /// Busy loops to run beside the scenarios (`--hog N`).
    pub hog: usize,
    full_in_debug: bool,
}

impl Args {
    /// Whether scenario `n` runs.
    pub fn wants(&self, n: u8) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&n))
    }
}

pub fn parse() -> Args {
    let mut a = Args {
        quick: false,
        pg_url: std::env::var("POOLWARDEN_BENCH_PG_URL").ok(),
        redis_url: std::env::var("POOLWARDEN_BENCH_REDIS_URL").ok(),
        only: None,
        hog: 0,
        full_in_debug: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => a.quick = true,
            "--full" => a.full_in_debug = true,
            "--postgres-url" | "--pg-url" => a.pg_url = it.next(),
            "--redis-url" => a.redis_url = it.next(),
            "--hog" => {
                a.hog = match it.next().map(|v| v.parse::<usize>()) {
                    Some(Ok(n)) => n,
                    _ => {
                        eprintln!("--hog needs a number of busy loops, e.g. --hog 2");
                        std::process::exit(2);
                    }
                }
            }
            "--only" => {
                a.only = it.next().map(|v| {
                    v.split(',')
                        .filter_map(|s| match s.trim() {
                            "faults" => Some(faults::ID),
                            "fleet" => Some(fleet::ID),
                            n => n.parse().ok(),
                        })
                        .collect()
                })
            }
            // Passed by `cargo bench`; filters of libtest-style runners are ignored.
            "--bench" | "--nocapture" | "--test" => {}
            "--help" | "-h" => {
                println!("{}", include_str!("usage.txt"));
                std::process::exit(0);
            }
            other if other.starts_with('-') => eprintln!("ignoring unknown flag {other}"),
            _ => {}
        }
    }
    if cfg!(debug_assertions) && !a.quick && !a.full_in_debug {
        eprintln!("a debug build runs in quick mode (pass --full to override); use `cargo bench --bench load` for the full run");
        a.quick = true;
    }
    a
}
