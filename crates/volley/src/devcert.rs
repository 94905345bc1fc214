//! `volley dev-cert`: a self-signed certificate and key for local TLS, so
//! any server (ours, a proxy, a peer in a test) can serve `wss://` without
//! a real CA. Never for production.

use std::path::PathBuf;

use anyhow::Context;

/// Options of `volley dev-cert`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevCertArgs {
    /// Where to write the certificate (PEM).
    #[arg(long, default_value = "volley-dev-cert.pem")]
    cert: PathBuf,
    /// Where to write the private key (PEM, PKCS#8).
    #[arg(long, default_value = "volley-dev-key.pem")]
    key: PathBuf,
    /// Names the certificate is valid for (repeatable).
    #[arg(long = "name", default_values = ["localhost", "127.0.0.1", "::1"])]
    names: Vec<String>,
}

/// Generate and write the pair.
pub(crate) fn run(args: DevCertArgs) -> anyhow::Result<()> {
    let generated = rcgen::generate_simple_self_signed(args.names.clone()).context("cannot generate a certificate")?;
    std::fs::write(&args.cert, generated.cert.pem())
        .with_context(|| format!("cannot write {}", args.cert.display()))?;
    std::fs::write(&args.key, generated.signing_key.serialize_pem())
        .with_context(|| format!("cannot write {}", args.key.display()))?;
    // A private key is for its owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.key, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", args.key.display()))?;
    }
    println!(
        "wrote {} and {} for {}",
        args.cert.display(),
        args.key.display(),
        args.names.join(", ")
    );
    Ok(())
}
