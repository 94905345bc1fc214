//! Passwords (argon2id), the tokens this server issues (HS256 JWTs), and
//! verification of tokens minted by another application.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
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
    /// The game's seat-token key: the same shared secret under another
    /// name, so every node of a cluster checks every node's seat tokens
    /// and neither kind of token passes for the other.
    seat_key: Vec<u8>,
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
    /// The HMAC key for the game's seat tokens (see the field).
    pub(crate) fn seat_key(&self) -> &[u8] {
        &self.seat_key
    }

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
        let mut seat_key = b"volley-seat\0".to_vec();
        seat_key.extend_from_slice(&secret);
        Ok(Auth {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            seat_key,
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

/// Password hashing on a bounded pool. Each argon2id hash takes tens of
/// milliseconds and 19 MiB by design; run all at once, a login storm would
/// take the server's memory (eleven parallel logins once raised its RSS by
/// 130 MB). At most `workers` hash at a time, on threads of their own (so
/// the allocator keeps one arena per worker: hashes spread over tokio's
/// blocking threads left 40 MB behind in each of 16 arenas), and at most
/// `max_waiting` wait; beyond that a request is turned away at once, to be
/// retried.
#[derive(Debug)]
pub struct Hashing {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// The pool is full: retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

impl Hashing {
    /// A pool of `workers` hashing threads with a queue of `max_waiting`.
    pub fn new(workers: usize, max_waiting: usize) -> Hashing {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(max_waiting);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("volley-hash-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the pool was dropped
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Hashing { jobs }
    }

    /// One per core, and a queue of 16 per worker (about half a second of work).
    pub fn per_core() -> Hashing {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Hashing::new(cores, cores * 16)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Busy> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        if self.jobs.try_send(job).is_err() {
            metrics::counter!("volley_password_checks_refused_total").increment(1);
            return Err(Busy);
        }
        result.await.map_err(|_| Busy)
    }

    /// Hash a password with argon2id.
    pub async fn hash(&self, password: String) -> Result<Result<String, Error>, Busy> {
        self.run(move || hash_reusing(password.as_bytes())).await
    }

    /// Check a password against a stored hash.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        self.run(move || verify_reusing(password.as_bytes(), &hash)).await
    }
}

thread_local! {
    /// Each hashing thread's argon2 memory, allocated once and reused: with
    /// a fresh 19 MiB allocation per hash, glibc's adaptive mmap threshold
    /// kept every freed block, and the server grew 19.5 MB per login.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most argon2 memory a stored hash may ask for (64 MiB), so a hash
/// written by someone else cannot make a worker allocate without bound.
const MAX_BLOCKS: usize = 64 * 1024;

fn with_blocks<T>(count: usize, work: impl FnOnce(&mut [argon2::Block]) -> T) -> Option<T> {
    if count > MAX_BLOCKS {
        return None;
    }
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < count {
            blocks.resize(count, argon2::Block::default());
        }
        Some(work(&mut blocks[..count]))
    })
}

fn hash_reusing(password: &[u8]) -> Result<String, Error> {
    let key = |e: &dyn std::fmt::Display| Error::Key(e.to_string());
    let params = argon2::Params::default();
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params.clone());
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| key(&e))?;
    let mut raw_salt = [0u8; 64];
    let raw_salt = salt.as_salt().decode_b64(&mut raw_salt).map_err(|e| key(&e))?;
    let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
    with_blocks(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password, raw_salt, &mut out, blocks)
    })
    .ok_or_else(|| Error::Key("argon2 memory above the limit".into()))?
    .map_err(|e| key(&e))?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(&params).map_err(|e| key(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(argon2::password_hash::Output::new(&out).map_err(|e| key(&e))?),
    };
    Ok(hash.to_string())
}

fn verify_reusing(password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (
        argon2::Params::try_from(&parsed),
        argon2::Algorithm::try_from(parsed.algorithm),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut raw_salt = [0u8; 64];
    let Ok(raw_salt) = salt.decode_b64(&mut raw_salt) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = with_blocks(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password, raw_salt, &mut out, blocks)
    });
    // `Output`'s equality is constant-time.
    matches!(computed, Some(Ok(()))) && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
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

/// User names: 1 to 32 characters of letters, digits, `_`, `-` and `.`.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// Whether a user of this kind may use the server with the current settings.
pub fn kind_allowed(kind: UserKind, guests: bool) -> bool {
    kind != UserKind::Guest || guests
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordVerifier;

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        let ours = hash_reusing(b"correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(verify_reusing(b"correct horse", &ours));
        assert!(!verify_reusing(b"wrong horse", &ours));
        // A hash made by the argon2 crate's own hasher (accounts from before).
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &SaltString::encode_b64(&[7u8; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(verify_reusing(b"battery staple", &theirs));
        assert!(!verify_reusing(b"battery", &theirs));
        assert!(!verify_reusing(b"x", "not a hash"));
        // A stored hash asking for 1 GiB of memory is refused, not computed.
        let greedy = theirs.replace("m=19456", "m=1048576");
        assert!(!verify_reusing(b"battery staple", &greedy));
    }
}
