//! Seat tokens: the signed credential that takes a seat back on whatever
//! node runs the match now.
//!
//! A token is a JWT (HS256) with the match (`m`), the node that issued it
//! (`n`), the seat's player (`s`), the seat's current resume secret (`k`)
//! and an expiry (`exp`). Every node of a cluster derives the same key from
//! the shared token secret, so any node verifies any node's tokens, and a
//! match that moved keeps working tokens. The secret rotates each time the
//! seat is taken back, so a token (or resume token) that was already used
//! is refused as replayed, not honoured twice.
//!
//! The proxy does not verify tokens: `?node=` in the URL is a routing hint
//! only, so the secret stays off the proxies (and HAProxy or nginx route
//! the same way). A wrong hint costs a `MOVED` from the node that got the
//! connection, never a seat: the node that runs the match checks the token.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::protocol::MatchId;

/// Why a seat token was refused; each has its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeatError {
    /// Not a token, another key's, or altered: close 4001.
    Invalid,
    /// Past its expiry: close 4002.
    Expired,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    m: u32,
    n: String,
    s: u32,
    k: String,
    exp: u64,
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeatClaims {
    pub(crate) matched: MatchId,
    pub(crate) player: u32,
    pub(crate) secret: [u8; 16],
}

/// The keys of one node (the same on every node of a cluster).
pub(crate) struct SeatKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SeatKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeatKeys(..)")
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SeatKeys {
    pub(crate) fn new(key: &[u8]) -> SeatKeys {
        SeatKeys {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
        }
    }

    /// A token for `player`'s seat in `matched`, holding `secret`, valid for `ttl_secs`.
    pub(crate) fn issue(&self, matched: MatchId, node: &str, player: u32, secret: &[u8; 16], ttl_secs: u64) -> String {
        let claims = Claims {
            m: matched.0,
            n: node.to_owned(),
            s: player,
            k: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
            exp: now() + ttl_secs,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Check the signature and the expiry (no leeway: a seat's grace is
    /// counted in seconds already).
    pub(crate) fn verify(&self, token: &str) -> Result<SeatClaims, SeatError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            tracing::debug!(error = %e, "seat token refused");
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => SeatError::Expired,
                _ => SeatError::Invalid,
            }
        })?;
        let c = data.claims;
        let secret: [u8; 16] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c.k.as_bytes())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SeatError::Invalid)?;
        // The secret starts with the match id (see `Lobby::join`).
        if secret[..4] != c.m.to_le_bytes() || c.m == 0 {
            return Err(SeatError::Invalid);
        }
        Ok(SeatClaims {
            matched: MatchId(c.m),
            player: c.s,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(m: u32) -> [u8; 16] {
        let mut s = [7u8; 16];
        s[..4].copy_from_slice(&m.to_le_bytes());
        s
    }

    #[test]
    fn tokens_verify_on_any_node_with_the_key_and_nowhere_else() {
        let a = SeatKeys::new(b"volley-seat\0shared secret of the cluster");
        let b = SeatKeys::new(b"volley-seat\0shared secret of the cluster");
        let token = a.issue(MatchId(42), "n1", 5, &secret(42), 60);
        assert_eq!(
            b.verify(&token),
            Ok(SeatClaims {
                matched: MatchId(42),
                player: 5,
                secret: secret(42)
            })
        );
        let other = SeatKeys::new(b"volley-seat\0another cluster");
        assert_eq!(other.verify(&token), Err(SeatError::Invalid));
        // Altered claims break the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"m":42,"n":"n1","s":1,"k":"KgAAAAcHBwcHBwcHBwcHBw","exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(a.verify(&parts.join(".")), Err(SeatError::Invalid));
        assert_eq!(a.verify("not a token"), Err(SeatError::Invalid));
        assert_eq!(a.verify(""), Err(SeatError::Invalid));
    }

    #[test]
    fn expired_tokens_and_mismatched_secrets_are_refused() {
        let keys = SeatKeys::new(b"k");
        let claims = Claims {
            m: 42,
            n: "n1".into(),
            s: 5,
            k: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret(42)),
            exp: now() - 1,
        };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&expired), Err(SeatError::Expired));
        // A secret of another match inside a well-signed token: refused.
        let wrong = keys.issue(MatchId(43), "n1", 5, &secret(42), 60);
        assert_eq!(keys.verify(&wrong), Err(SeatError::Invalid));
    }
}
