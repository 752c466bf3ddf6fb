//! Facts about the machine and the toolchain, for the report's header.

use std::path::Path;

pub fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Versions of the peers and drivers, from Cargo.lock.
pub fn versions() -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .unwrap_or_default();
    let wanted = [
        "bb8",
        "bb8-postgres",
        "bb8-redis",
        "deadpool",
        "deadpool-postgres",
        "deadpool-redis",
        "mobc",
        "tokio",
        "tokio-postgres",
        "redis",
        "actix",
    ];
    let mut out = vec![(
        "poolwarden".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )];
    for name in wanted {
        let mut found = Vec::new();
        let mut lines = lock.lines();
        while let Some(l) = lines.next() {
            if l == format!("name = \"{name}\"") {
                if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                    found.push(v.trim_end_matches('"').to_string());
                }
            }
        }
        if !found.is_empty() {
            out.push((name.to_string(), found.join(" + ")));
        }
    }
    out
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
