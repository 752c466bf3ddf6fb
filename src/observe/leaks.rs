//! What [`PoolHandle::leaks`](crate::PoolHandle::leaks) answers: the connections held
//! past the leak threshold, for how long, and where they were checked out (the backtrace
//! with poolwarden's, tokio's, futures' and the standard library's frames trimmed, so the
//! caller's code is what is left).

use std::time::Duration;

use serde::{Serialize, Serializer};

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// A connection checked out for longer than the pool's `leak_threshold`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeakReport {
    /// The checkout's id (as in the leak warnings the pool logs).
    pub checkout: u64,
    /// How long it has been held (serialized in seconds).
    #[serde(serialize_with = "secs")]
    pub held: Duration,
    /// Where it was checked out: the caller's frames of the checkout's backtrace, one
    /// per line with their locations, when `leak_backtrace` is on; `None` otherwise.
    pub backtrace: Option<String>,
}

/// Crates whose frames say nothing about where the caller checked out.
const INTERNAL: [&str; 10] = [
    "poolwarden::",
    "tokio::",
    "futures::",
    "futures_util::",
    "futures_core::",
    "futures_executor::",
    "std::",
    "core::",
    "alloc::",
    "backtrace::",
];

/// Whether a frame's function belongs to the crates above (or to no Rust path at all:
/// `_start`, `__libc_start_main`, `clone3`, unresolved frames).
fn internal(function: &str) -> bool {
    let f = function.trim();
    if let Some(inner) = f.strip_prefix('<') {
        // `<Type as Trait>::method`: judged by the type, or by the trait for a generic
        // parameter (`<F as core::future::Future>::poll`).
        let (ty, rest) = inner.split_once(" as ").unwrap_or((inner, ""));
        let ty = ty.trim_start_matches('&').trim_start_matches("mut ");
        let ty = ty.trim_start_matches("dyn ").trim_start_matches('(');
        if ty.contains("::") {
            return INTERNAL.iter().any(|p| ty.starts_with(p));
        }
        return rest.is_empty() || INTERNAL.iter().any(|p| rest.starts_with(p));
    }
    !f.contains("::") || f.starts_with("__rust") || INTERNAL.iter().any(|p| f.starts_with(p))
}

/// The frames of a rendered [`std::backtrace::Backtrace`] that are not internal,
/// renumbered from 0, each with its `at file:line` line when there is one.
pub(crate) fn trim(rendered: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    let mut n = 0;
    for line in rendered.lines() {
        let t = line.trim_start();
        let frame = t
            .split_once(": ")
            .filter(|(num, _)| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()));
        if let Some((_, function)) = frame {
            keep = !internal(function);
            if keep {
                out.push_str(&format!("{n:>4}: {function}\n"));
                n += 1;
            }
        } else if keep && t.starts_with("at ") {
            out.push_str(&format!("             {t}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_callers_frames() {
        let rendered = "   0: std::backtrace_rs::backtrace::libunwind::trace
             at /rustc/x/library/std/src/../../backtrace/src/backtrace/libunwind.rs:116:5
   1: std::backtrace::Backtrace::force_capture
   2: poolwarden::pool::leaks::Leaks::checkout
             at ./src/pool/leaks.rs:47:25
   3: <core::pin::Pin<P> as core::future::future::Future>::poll
   4: myapp::handlers::orders::{{closure}}
             at ./src/handlers.rs:12:9
   5: <F as core::future::future::Future>::poll
   6: <myapp::Job as core::ops::drop::Drop>::drop
             at ./src/job.rs:3:1
   7: tokio::runtime::task::core::Core<T,S>::poll
   8: __rust_begin_short_backtrace
   9: _start
";
        let t = trim(rendered);
        assert_eq!(
            t,
            "   0: myapp::handlers::orders::{{closure}}
             at ./src/handlers.rs:12:9
   1: <myapp::Job as core::ops::drop::Drop>::drop
             at ./src/job.rs:3:1
"
        );
    }
}
