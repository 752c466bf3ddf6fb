//! The page: `assets/index.html` with `app.css` and `app.js` inlined (one request, so the
//! token only has to come once), and the Content-Security-Policy that admits exactly
//! those two by their SHA-256 and lets the script talk to this server only.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

const INDEX: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");
const CHART_JS: &str = include_str!("assets/chart.js");

/// The rendered page and its policy.
pub(crate) struct Page {
    pub(crate) html: String,
    pub(crate) csp: String,
}

/// Built once per process.
pub(crate) fn page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let script = format!("{CHART_JS}\n{JS}");
        let html = INDEX
            .replace("/*__APP_CSS__*/", CSS)
            .replace("/*__APP_JS__*/", &script);
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            base64(&Sha256::digest(script.as_bytes())),
            base64(&Sha256::digest(CSS.as_bytes())),
        );
        Page { html, csp }
    })
}

/// Standard base64 with padding (for the policy's hashes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_page_inlines_its_assets() {
        let page = page();
        assert!(!page.html.contains("__APP_"));
        assert!(page.html.contains("data-points"));
        assert!(page.csp.contains("script-src 'sha256-"));
    }
}
