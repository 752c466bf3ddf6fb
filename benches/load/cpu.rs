//! CPU time of the whole bench process, all threads (the client runtime, the supervisors'
//! threads, the drivers' tasks): user + system from `/proc/self/stat`. The servers run in
//! other processes and are not counted.

/// User + system CPU seconds this process has used so far, all threads together
/// (`utime` + `stime` of `/proc/self/stat`, in clock ticks of 10 ms). 0 off Linux.
pub fn process_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    (get(11) + get(12)) as f64 / 100.0
}
