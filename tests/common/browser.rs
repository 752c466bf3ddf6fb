//! A headless Chromium driven over WebDriver: `chromedriver --port=N` started here on a
//! free loopback port, a [`fantoccini::Client`] session on it, both ended when the
//! [`Browser`] is dropped.
//!
//! ```ignore
//! let Some(browser) = Browser::start().await else { return }; // `SKIP: …` when missing
//! browser.client.goto("http://127.0.0.1:8080/").await?;
//! ```
//!
//! Needs the Debian packages `chromium` and `chromium-driver`; without them `start`
//! prints `SKIP: …` and answers `None` ([`super::skip`]: a panic under `CI=true`).
//! chromedriver runs in a process group of its own, so dropping the `Browser` kills the
//! browser it started too, even when the test panicked before closing the session.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;

/// Where Debian and others put the two binaries, besides `PATH`.
fn dirs() -> Vec<PathBuf> {
    [
        "/usr/bin",
        "/usr/lib/chromium",
        "/usr/lib/chromium-browser",
        "/snap/bin",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// `(chromium, chromedriver)` when both are installed.
pub fn find() -> Option<(PathBuf, PathBuf)> {
    let chromium = super::find_binary(
        &[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ],
        &dirs(),
    )?;
    let driver = super::find_binary(&["chromedriver"], &dirs())?;
    Some((chromium, driver))
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    log: PathBuf,
}

impl Browser {
    /// Start chromedriver and a headless browser session, or `None` (after `SKIP: …`)
    /// when they are not installed. Panics if they are installed but do not start.
    pub async fn start() -> Option<Browser> {
        let Some((chromium, driver)) = find() else {
            return super::skip("chromium + chromedriver", "chromium chromium-driver");
        };
        for _ in 0..3 {
            match Self::start_on(&chromium, &driver, super::free_port()).await {
                Ok(b) => return Some(b),
                Err(e) => eprintln!("chromedriver did not start ({e}); retrying on another port"),
            }
        }
        panic!("chromedriver ({}) would not start", driver.display());
    }

    async fn start_on(chromium: &Path, driver: &Path, port: u16) -> Result<Browser, String> {
        use std::os::unix::process::CommandExt;
        let log = std::env::temp_dir().join(format!("poolwarden-chromedriver-{port}.log"));
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", driver.display()))?;
        // Kill it (and whatever it started) if anything below fails.
        let mut guard = DriverGuard(Some(child));
        let url = format!("http://127.0.0.1:{port}");
        let up = super::eventually(Duration::from_secs(15), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop)
        })
        .await;
        if up.is_none() {
            return Err(format!(
                "not listening on {port}: {}",
                super::log_tail(&log, 20)
            ));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--window-size=1400,1100",
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .map_err(|e| format!("new session: {e}; {}", super::log_tail(&log, 20)))?;
        Ok(Browser {
            client,
            driver: guard.0.take().expect("held"),
            log,
        })
    }

    /// End the session (the browser quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// The tail of chromedriver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        super::log_tail(&self.log, 30)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
        let _ = std::fs::remove_file(&self.log);
    }
}

struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            kill_group(child);
        }
    }
}

/// Kill chromedriver's process group (it and the browser it started), then reap it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{}", child.id()))
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
