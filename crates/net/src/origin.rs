//! The browser origin policy shared by every WebSocket endpoint.

use http::{header, HeaderMap};

/// Whether a handshake's `Origin` may open a WebSocket: absent (not a
/// browser), same-origin (scheme-less match against `Host`), or listed in
/// `allowed` (`*` allows any). Cross-site WebSocket hijacking is the reason:
/// browsers send cookies and connect across origins freely.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| "unreadable Origin header".to_owned())?;
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let same = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host));
    if same {
        Ok(())
    } else {
        Err(format!("origin {origin} is not allowed"))
    }
}
