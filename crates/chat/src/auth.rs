//! Passwords (argon2id), the tokens this server issues (HS256 JWTs), and
//! verification of tokens minted by another application.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use volley_hub::{User, UserId, UserKind};

use crate::config::{ChatConfig, JwtAlgorithm};
use crate::Error;

const ISSUER: &str = "volley";

/// Who a valid token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A user of this server, by id.
    Local(UserId),
    /// A subject of the configured external issuer.
    External(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iss: String,
    #[serde(default)]
    name: String,
}

/// Token issuing and verification.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl_secs: u64,
    external: Option<(DecodingKey, Validation)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("Auth")
            .field("ttl_secs", &self.ttl_secs)
            .field("external", &self.external.is_some())
            .finish()
    }
}

impl Auth {
    /// Load keys: the configured secret, or the one in the data directory
    /// (created on first start), and the external verification key if any.
    pub(crate) fn new(config: &ChatConfig) -> Result<Auth, Error> {
        // `ChatConfig::validate` has checked the secret's length and that
        // each algorithm has its key.
        let secret = match &config.token_secret {
            Some(s) => s.as_bytes().to_vec(),
            None => load_or_create_secret(&config.data_dir)?,
        };
        let external = match config.jwt.algorithm {
            None => None,
            Some(alg) => {
                let pem = || -> Result<Vec<u8>, Error> {
                    let path = config.jwt.public_key_file.as_deref().unwrap_or(Path::new(""));
                    std::fs::read(path).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
                };
                let key_error = |e: jsonwebtoken::errors::Error| Error::Key(e.to_string());
                let (algorithm, key) = match alg {
                    JwtAlgorithm::HS256 => (
                        Algorithm::HS256,
                        DecodingKey::from_secret(config.jwt.secret.as_deref().unwrap_or_default().as_bytes()),
                    ),
                    JwtAlgorithm::RS256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem()?).map_err(key_error)?),
                    JwtAlgorithm::ES256 => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem()?).map_err(key_error)?),
                };
                let mut validation = Validation::new(algorithm);
                validation.set_required_spec_claims(&["exp", "sub"]);
                if let Some(iss) = &config.jwt.issuer {
                    validation.set_issuer(&[iss]);
                }
                match &config.jwt.audience {
                    Some(aud) => validation.set_audience(&[aud]),
                    None => validation.validate_aud = false,
                }
                Some((key, validation))
            }
        };
        Ok(Auth {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ttl_secs: config.token_ttl_secs,
            external,
        })
    }

    /// A signed token for `user`, valid for the configured lifetime.
    pub fn issue(&self, user: &User) -> String {
        let claims = Claims {
            sub: user.id.to_string(),
            exp: now_secs() + self.ttl_secs,
            iss: ISSUER.into(),
            name: user.name.clone(),
        };
        // HS256 signing with a valid key cannot fail.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).unwrap_or_default()
    }

    /// Check a token: ours first, then the external issuer's.
    pub fn verify(&self, token: &str) -> Option<Identity> {
        let mut ours = Validation::new(Algorithm::HS256);
        ours.set_issuer(&[ISSUER]);
        ours.set_required_spec_claims(&["exp", "sub", "iss"]);
        ours.validate_aud = false;
        if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &self.decoding, &ours) {
            return data.claims.sub.parse().ok().map(Identity::Local);
        }
        let (key, validation) = self.external.as_ref()?;
        #[derive(Deserialize)]
        struct ExternalClaims {
            sub: String,
        }
        let data = jsonwebtoken::decode::<ExternalClaims>(token, key, validation).ok()?;
        let sub = data.claims.sub.trim();
        valid_name(sub).then(|| Identity::External(sub.to_owned()))
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn load_or_create_secret(dir: &Path) -> Result<Vec<u8>, Error> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("token-secret");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 32 => return Ok(bytes),
        Ok(_) => return Err(Error::Key(format!("{} is shorter than 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options.open(&path)?.write_all(&secret)?;
    Ok(secret.to_vec())
}

/// Hash a password with argon2id (on a blocking thread: it takes tens of ms by design).
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| Error::Key(e.to_string()))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Key(e.to_string()))
    })
    .await
    .map_err(|e| Error::Key(e.to_string()))?
}

/// A valid argon2id hash of a random password, made once: checked against
/// when a login names no user, so both failures take as long.
pub fn decoy_hash() -> String {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY
        .get_or_init(|| {
            let password: [u8; 16] = rand::random();
            let Ok(salt) = SaltString::encode_b64(&rand::random::<[u8; 16]>()) else {
                return String::new();
            };
            Argon2::default()
                .hash_password(&password, &salt)
                .map(|h| h.to_string())
                .unwrap_or_default()
        })
        .clone()
}

/// Check a password against a stored hash.
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// User names: 1 to 32 characters of letters, digits, `_`, `-` and `.`.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Whether a user of this kind may use the server with the current settings.
pub fn kind_allowed(kind: UserKind, guests: bool) -> bool {
    kind != UserKind::Guest || guests
}
