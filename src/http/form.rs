//! `application/x-www-form-urlencoded` request bodies, read strictly: a size limit, UTF-8
//! only, and no parameter twice unless it is one that may repeat (RFC 6749 §3.1, §3.2).

use super::error::OAuthError;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use percent_encoding::percent_decode;

/// Parameters that may appear more than once (RFC 8707 `resource`, RFC 8693 `audience`).
const REPEATABLE: &[&str] = &["resource", "audience"];

/// A parsed form.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a URL-encoded body or query string.
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(at) => (&piece[..at], &piece[at + 1..]),
                None => (piece, &b""[..]),
            };
            let (name, value) = (decode(name)?, decode(value)?);
            if !REPEATABLE.contains(&name.as_str()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{name}` appears more than once"
                )));
            }
            pairs.push((name, value));
        }
        Ok(Form { pairs })
    }

    /// The value of a parameter that appears at most once; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required parameter.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("missing parameter `{name}`")))
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A name or value with `+` as a space and `%XX` decoded. One with neither (a token, a
/// client id: most of what a token request carries) is found so by two `memchr` scans and
/// only checked to be UTF-8, not decoded byte by byte.
fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let decoded: Vec<u8> = if raw.contains(&b'%') || raw.contains(&b'+') {
        let plus_as_space: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_decode(&plus_as_space).collect()
    } else {
        raw.to_vec()
    };
    String::from_utf8(decoded)
        .map_err(|_| OAuthError::InvalidRequest("form values must be UTF-8".into()))
}

/// Reads a form body of at most `limit` bytes from a POST with the form content type.
pub async fn read(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Form, OAuthError> {
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| OAuthError::InvalidRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(OAuthError::TooLarge(format!(
                "the body exceeds {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Form::parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_and_plus() {
        let form = Form::parse(b"a=x%20y+z&resource=r1&resource=r%2F2&empty=").unwrap();
        assert_eq!(form.get("a"), Some("x y z"));
        assert_eq!(form.all("resource"), vec!["r1", "r/2"]);
        assert_eq!(form.get("empty"), None);
        assert!(form.required("nope").is_err());
    }

    #[test]
    fn duplicates_and_bad_utf8_are_refused() {
        assert_eq!(
            Form::parse(b"a=1&a=2").unwrap_err().code(),
            "invalid_request"
        );
        for not_utf8 in [&b"a=%ff%fe"[..], b"a=%ff+x", b"a=\xff"] {
            assert_eq!(Form::parse(not_utf8).unwrap_err().code(), "invalid_request");
        }
    }
}
