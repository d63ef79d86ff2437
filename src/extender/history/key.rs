//! How pod names and UIDs are written to the history: HMAC-SHA256 under a per-installation
//! key (the first 128 bits, hex), so that the same pod has the same name in every row and
//! every file, while nobody without the key can confirm a guessed `namespace/name` (a plain
//! hash could be reversed by hashing guesses). Plain names only when asked.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key file a recorder makes in its directory when no key file is given.
pub const KEY_FILE: &str = "history.key";
/// Shortest key accepted: 128 bits.
const MIN_KEY_BYTES: usize = 16;
/// Bytes of a generated key: HMAC-SHA256's block-sized security level.
const NEW_KEY_BYTES: usize = 32;
/// Bytes of the MAC kept per name: 128 bits, collision-free for any cluster's pod count.
const KEPT_BYTES: usize = 16;

/// A key that cannot be used, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("history: cannot start the recorder's thread: {0}")]
    Thread(std::io::Error),
    #[error("history key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "history key {path}: {len} bytes; a key needs at least {MIN_KEY_BYTES} (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    Short { path: PathBuf, len: usize },
    #[error("history key: the system's random source failed")]
    Random,
}

/// How names are written.
#[derive(Debug, Clone)]
pub enum Names {
    Hashed(HashKey),
    Plain,
}

/// An HMAC key (its bytes never shown).
#[derive(Clone)]
pub struct HashKey(hmac::Key);

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

impl Names {
    /// `text` as the history writes it.
    pub fn write(&self, text: &str) -> String {
        match self {
            Names::Plain => text.to_string(),
            Names::Hashed(HashKey(key)) => {
                let tag = hmac::sign(key, text.as_bytes());
                tag.as_ref()[..KEPT_BYTES]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }
        }
    }

    /// The key from `file` (its bytes, surrounding whitespace dropped: a mounted Secret), or
    /// else from `dir/history.key`, made with fresh random bytes (mode 0600) if missing.
    pub fn keyed(file: Option<&Path>, dir: &Path) -> Result<Names, KeyError> {
        let path = file.map_or_else(|| dir.join(KEY_FILE), Path::to_path_buf);
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        if file.is_none() && !path.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
            let mut bytes = [0u8; NEW_KEY_BYTES];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| KeyError::Random)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(&path).map_err(io)?;
            out.write_all(format!("{hex}\n").as_bytes()).map_err(io)?;
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        let key = bytes.trim_ascii();
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::Short {
                path,
                len: key.len(),
            });
        }
        Ok(Names::Hashed(HashKey(hmac::Key::new(
            hmac::HMAC_SHA256,
            key,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_stable_per_key_and_differ_between_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = Names::keyed(None, dir.path()).unwrap();
        let again = Names::keyed(None, dir.path()).unwrap();
        let name = "team-a/train-7";
        let hashed = a.write(name);
        assert_ne!(hashed, name);
        assert_eq!(hashed.len(), 2 * KEPT_BYTES);
        assert_eq!(hashed, again.write(name), "the saved key is reused");
        assert_ne!(hashed, a.write("team-a/train-8"));
        let other = tempfile::tempdir().unwrap();
        let b = Names::keyed(None, other.path()).unwrap();
        assert_ne!(hashed, b.write(name), "another installation, another key");
        assert_eq!(Names::Plain.write(name), name);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }

    #[test]
    fn a_given_key_file_is_used_and_a_short_or_missing_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        let from_file = Names::keyed(Some(&secret), dir.path()).unwrap();
        assert_ne!(from_file.write("x/y"), "x/y");
        assert!(!dir.path().join(KEY_FILE).exists(), "no key made");
        std::fs::write(&secret, "short").unwrap();
        let e = Names::keyed(Some(&secret), dir.path()).unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
        let e = Names::keyed(Some(&dir.path().join("nope")), dir.path()).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }
}
