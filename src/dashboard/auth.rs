//! The bearer token: taken from `Authorization: Bearer …` or a `token` query parameter,
//! compared as SHA-256 digests in constant time.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// The expected token, kept as its digest.
pub(crate) struct Token {
    digest: [u8; 32],
    /// An empty token admits nobody.
    empty: bool,
}

impl Token {
    pub(crate) fn new(secret: &Secret) -> Self {
        Self {
            digest: Sha256::digest(secret.expose().as_bytes()).into(),
            empty: secret.expose().is_empty(),
        }
    }

    /// Whether `request` presents this token.
    pub(crate) fn admits(&self, request: &HttpRequest) -> bool {
        let Some(presented) = presented(request) else {
            return false;
        };
        if self.empty || presented.is_empty() {
            return false;
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Constant time: every byte is looked at, whatever the first difference.
        digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// `401`, an empty body, and a `WWW-Authenticate` header: nothing else.
pub(crate) fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"poolwarden\""))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The token a request presents: the `Authorization` header first, else `?token=`.
fn presented(request: &HttpRequest) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    request.query_string().split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| percent_decode(value))?
    })
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); `None` on a bad escape
/// or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn token(s: &str) -> Token {
        Token::new(&Secret::new(s))
    }

    #[test]
    fn header_or_query() {
        let t = token("a b/c");
        let ok = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer a b/c"))
            .to_http_request();
        assert!(t.admits(&ok));
        let ok = TestRequest::with_uri("/x?y=1&token=a+b%2Fc").to_http_request();
        assert!(t.admits(&ok));
        let wrong = TestRequest::with_uri("/x?token=a+b%2Fd").to_http_request();
        assert!(!t.admits(&wrong));
        let basic = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic a b/c"))
            .to_http_request();
        assert!(!t.admits(&basic));
        assert!(!t.admits(&TestRequest::default().to_http_request()));
    }

    #[test]
    fn an_empty_token_admits_nobody() {
        let t = token("");
        let req = TestRequest::with_uri("/x?token=").to_http_request();
        assert!(!t.admits(&req));
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer "))
            .to_http_request();
        assert!(!t.admits(&req));
    }
}
