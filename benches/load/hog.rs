//! `--hog N`: N busy-loop processes beside the run, to measure on a loaded machine. Each is
//! a shell loop that spins and ends by itself once the bench process is gone (checked
//! every 100,000 iterations), so none outlives an aborted run; [`Hog`] kills them when it
//! is dropped, at the end of the run or while a panic unwinds.

use std::process::{Child, Command, Stdio};

/// Spins while its parent (the bench) lives.
const LOOP: &str = "while kill -0 \"$PPID\" 2>/dev/null; do i=0; \
                    while [ \"$i\" -lt 100000 ]; do i=$((i + 1)); done; done";

/// The busy loops; killed on drop.
pub struct Hog {
    children: Vec<Child>,
}

impl Hog {
    /// Start `n` busy loops (none for 0).
    pub fn start(n: usize) -> std::io::Result<Self> {
        let mut hog = Self {
            children: Vec::with_capacity(n),
        };
        for _ in 0..n {
            // On an error the loops started so far are killed by the drop of `hog`.
            hog.children.push(
                Command::new("sh")
                    .args(["-c", LOOP])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        Ok(hog)
    }

    pub fn count(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
