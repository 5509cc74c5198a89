//! The TURN server's settings (`[turn]` in `onair.toml`) and its shared secret, created once in
//! the data directory (I/O at start only).

use std::fmt;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The file under the data directory holding the generated REST secret.
pub const SECRET_FILE: &str = "turn-secret";

/// `[turn]`: the embedded TURN server (RFC 8656), on by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Run the embedded TURN server and hand it to clients in WHIP/WHEP `Link` headers.
    pub enabled: bool,
    /// Address the UDP and TCP listeners and the relay sockets bind to.
    pub listen: IpAddr,
    /// UDP listener port (0 = any free port).
    pub udp_port: u16,
    /// TCP listener port (RFC 8656 §3.1; 0 = any free port).
    pub tcp_port: u16,
    /// Also listen on TCP (clients behind UDP-blocking firewalls).
    pub tcp: bool,
    /// UDP ports of the relayed addresses, one per allocation; keep them apart from
    /// `udp_ports` and open them in the firewall.
    pub relay_ports: RelayPorts,
    /// The relayed address advertised to clients; default: `public_ip`, else `listen` when
    /// it is a concrete address, else the first non-loopback IPv4 address of the machine.
    pub relay_ip: Option<IpAddr>,
    /// REALM of the long-term credentials (RFC 8489 §9.2).
    pub realm: String,
    /// REST secret shared with coturn (`static-auth-secret`). When absent one is created in
    /// `data_dir/turn-secret` on first start; give that value to an external coturn.
    pub secret: Option<String>,
    /// How long minted credentials stay valid.
    pub credential_ttl_secs: u64,
    /// Allocations one user may hold at once (486 beyond).
    pub user_quota: usize,
    /// Allocations the server holds at once (486 beyond).
    pub total_quota: usize,
    /// Longest allocation lifetime granted, in seconds (at least the RFC's 600 s default).
    pub max_lifetime_secs: u64,
    /// Relay to loopback, private and link-local peers too (RFC 8656 §21). onair's own media
    /// addresses are always reachable.
    pub allow_private: bool,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            udp_port: 3478,
            tcp_port: 3478,
            tcp: true,
            relay_ports: RelayPorts {
                first: 49000,
                last: 49999,
            },
            relay_ip: None,
            realm: "onair".to_owned(),
            secret: None,
            credential_ttl_secs: 24 * 3600,
            user_quota: 16,
            total_quota: 1000,
            max_lifetime_secs: 3600,
            allow_private: false,
        }
    }
}

impl TurnConfig {
    /// Checks what serde cannot; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.realm.is_empty() || self.realm.len() > 127 || self.realm.contains('"') {
            return Err("turn.realm must be 1-127 characters without quotes".into());
        }
        if self.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("turn.secret must be at least 16 characters".into());
        }
        if !(60..=30 * 24 * 3600).contains(&self.credential_ttl_secs) {
            return Err("turn.credential_ttl_secs must be within 60..=2592000".into());
        }
        if self.user_quota == 0 || self.total_quota == 0 {
            return Err("turn.user_quota and turn.total_quota must be at least 1".into());
        }
        if !(600..=86400).contains(&self.max_lifetime_secs) {
            return Err("turn.max_lifetime_secs must be within 600..=86400".into());
        }
        Ok(())
    }
}

/// An inclusive UDP port range, written `49000-49999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayPorts {
    /// First port.
    pub first: u16,
    /// Last port (inclusive).
    pub last: u16,
}

impl FromStr for RelayPorts {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("turn relay port range `{s}`: expected FIRST-LAST");
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for RelayPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Serialize for RelayPorts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RelayPorts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The configured secret, or the one in `data_dir/turn-secret`, created (32 random bytes,
/// base64, mode 0600) on first start.
pub fn load_or_create_secret(configured: Option<&str>, data_dir: &Path) -> std::io::Result<String> {
    use base64::Engine;
    if let Some(secret) = configured {
        return Ok(secret.to_owned());
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 16 => return Ok(text.trim().to_owned()),
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
            Ok(secret)
        }
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
    fn defaults_validate_and_parse() {
        let c = TurnConfig::default();
        c.validate().unwrap();
        assert_eq!("49000-49999".parse::<RelayPorts>().unwrap(), c.relay_ports);
        assert!("5-1".parse::<RelayPorts>().is_err());
        let bad = TurnConfig {
            secret: Some("short".into()),
            ..TurnConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("turn.secret"));
    }

    #[test]
    fn secret_is_created_once() {
        let dir = std::env::temp_dir().join(format!("onair-turn-secret-{}", rand::random::<u64>()));
        let a = load_or_create_secret(None, &dir).unwrap();
        assert_eq!(a, load_or_create_secret(None, &dir).unwrap());
        assert!(a.len() >= 32);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
