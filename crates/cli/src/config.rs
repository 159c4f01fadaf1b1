//! Configuration: flags, then environment variables, then defaults (an embedded SQLite file under
//! `./data/`). The data key (the master secret for personal-data encryption) comes from
//! `RXMEMBER_DATA_KEY` or a key file; on first use of the default key file a new key is generated.

use anyhow::{Context, Result, bail};
use rxmember_core::org::Scope;
use rxmember_store::Store;
use rxmember_store::companies::Company;
use rxmember_store::crypto::Crypto;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Database URL: sqlite://path or postgres://user@host/db.
    #[arg(long, global = true, env = "RXMEMBER_DATABASE_URL")]
    pub db: Option<String>,
    /// File holding the base64 data key (ignored when RXMEMBER_DATA_KEY is set).
    #[arg(long, global = true, env = "RXMEMBER_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Mark session cookies Secure (serve behind HTTPS).
    #[arg(long, global = true, env = "RXMEMBER_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Where engine snapshots are kept (default: `engine/` beside the SQLite file, else ./data/engine).
    #[arg(long, global = true, env = "RXMEMBER_ENGINE_DIR")]
    pub engine_dir: Option<PathBuf>,
}

pub struct Config {
    pub database_url: String,
    pub crypto: Crypto,
    pub secure_cookies: bool,
    pub engine_dir: PathBuf,
}

const DATA_DIR: &str = "./data";

impl Config {
    pub fn resolve(args: &Args) -> Result<Config> {
        let database_url = match &args.db {
            Some(u) => u.clone(),
            None => {
                std::fs::create_dir_all(DATA_DIR).with_context(|| format!("creating {DATA_DIR}"))?;
                format!("sqlite://{DATA_DIR}/rxmember.db")
            }
        };
        let crypto = match std::env::var("RXMEMBER_DATA_KEY") {
            Ok(k) => Crypto::from_base64(&k).context("RXMEMBER_DATA_KEY")?,
            Err(_) => {
                let explicit = args.key_file.is_some();
                let path = args.key_file.clone().unwrap_or_else(|| PathBuf::from(DATA_DIR).join("rxmember.key"));
                match std::fs::read_to_string(&path) {
                    Ok(k) => Crypto::from_base64(&k).with_context(|| format!("data key file {}", path.display()))?,
                    Err(_) if !explicit => create_key_file(&path)?,
                    Err(e) => bail!("cannot read data key file {}: {e}", path.display()),
                }
            }
        };
        let engine_dir = args.engine_dir.clone().unwrap_or_else(|| {
            database_url
                .strip_prefix("sqlite://")
                .map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)))
                .and_then(|p| p.parent().map(|d| d.join("engine")))
                .unwrap_or_else(|| PathBuf::from(DATA_DIR).join("engine"))
        });
        Ok(Config { database_url, crypto, secure_cookies: args.secure_cookies, engine_dir })
    }

    pub fn redacted_url(&self) -> String {
        rxmember_store::db::redact(&self.database_url)
    }

    pub async fn open_store(&self) -> Result<Store> {
        Store::open(&self.database_url, self.crypto.clone())
            .await
            .with_context(|| format!("opening database {}", self.redacted_url()))
    }
}

fn create_key_file(path: &std::path::Path) -> Result<Crypto> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = Crypto::generate_base64();
    std::fs::write(path, &key).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::warn!(path = %path.display(), "generated a new data key; back it up: personal data cannot be read without it");
    Ok(Crypto::from_base64(&key)?)
}

/// The company named by `--company`, or the only one there is.
pub async fn company(store: &Store, scope: &Scope, code: Option<&str>) -> Result<Company> {
    Ok(match code {
        Some(code) => store.company_by_code(scope, code).await?,
        None => {
            let all = store.companies(scope).await?;
            match all.len() {
                1 => all.into_iter().next().expect("one company"),
                0 => bail!("no company yet: create one with `rxmember company create CODE NAME`"),
                _ => bail!(
                    "several companies exist: name one with --company ({})",
                    all.iter().map(|c| c.code.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    })
}
