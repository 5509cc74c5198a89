//! The server's JWT secret: from configuration, or created once in the data directory (I/O at
//! start only).

use base64::Engine;
use std::io::Write;
use std::path::Path;

const SECRET_FILE: &str = "jwt-secret";

/// Returns the configured secret, or the one stored in `data_dir/jwt-secret`, creating it
/// (32 random bytes, base64, mode 0600) on first start.
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> std::io::Result<Vec<u8>> {
    if let Some(secret) = configured {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is shorter than 16 characters", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 32] = rand::random();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.write_all(b"\n")?;
            Ok(secret.into_bytes())
        }
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load_or_create_secret(None, data_dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses() {
        let dir = std::env::temp_dir().join(format!("onair-secret-{}", rand::random::<u64>()));
        let a = load_or_create_secret(None, &dir).unwrap();
        let b = load_or_create_secret(None, &dir).unwrap();
        assert_eq!(a, b);
        assert!(a.len() >= 32);
        assert_eq!(
            load_or_create_secret(Some("configured-secret!"), &dir).unwrap(),
            b"configured-secret!"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
