//! The command line (`--fast`, `--seconds N`, `--strategy`, `--primary URL --replica URL…`)
//! and its environment variables (`FAILOVER_PRIMARY_URL`, `FAILOVER_REPLICA_URLS`).

use poolwarden::Strategy;

pub struct Args {
    /// Run length; `None`: until Ctrl-C (real servers only).
    pub seconds: Option<f64>,
    pub strategy: Strategy,
    pub primary: Option<String>,
    pub replicas: Vec<String>,
    /// Serve the dashboard on 127.0.0.1 while the demo runs.
    pub dashboard: bool,
}

pub const USAGE: &str =
    "usage: failover [--fast | --seconds N] [--strategy power-of-two|round-robin|random|least-loaded]
                [--primary URL --replica URL [--replica URL ...]] [--dashboard]
environment: FAILOVER_PRIMARY_URL, FAILOVER_REPLICA_URLS (comma-separated)";

pub fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seconds: None,
        strategy: Strategy::default(),
        primary: None,
        replicas: Vec::new(),
        dashboard: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--fast" => args.seconds = Some(6.0),
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v
                    .parse()
                    .map_err(|_| format!("--seconds: `{v}` is not a number"))?;
                if !(s >= 1.0 && s.is_finite()) {
                    return Err("--seconds must be at least 1".into());
                }
                args.seconds = Some(s);
            }
            "--strategy" => {
                args.strategy = match value("--strategy")?.as_str() {
                    "round-robin" | "round_robin" => Strategy::RoundRobin,
                    "random" => Strategy::Random,
                    "least-loaded" | "least_loaded" => Strategy::LeastLoaded,
                    "power-of-two" | "power_of_two" => Strategy::PowerOfTwo,
                    other => return Err(format!("unknown strategy `{other}`")),
                }
            }
            "--primary" => args.primary = Some(value("--primary")?),
            "--replica" => args.replicas.push(value("--replica")?),
            "--dashboard" => args.dashboard = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if args.primary.is_none() {
        args.primary = std::env::var("FAILOVER_PRIMARY_URL")
            .ok()
            .filter(|s| !s.is_empty());
    }
    if args.replicas.is_empty() {
        if let Ok(list) = std::env::var("FAILOVER_REPLICA_URLS") {
            args.replicas = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }
    if args.primary.is_none() && !args.replicas.is_empty() {
        return Err("replica URLs given without a primary URL".into());
    }
    Ok(args)
}

/// The arguments; on a mistake (or `--help`), the usage on stderr and exit with status 2
/// (0 for `--help`).
pub fn from_command_line() -> Args {
    match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("failover: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    }
}
