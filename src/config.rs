//! Configuration, read once at start (no I/O on the media path): embedded defaults, then
//! `onair.toml`, then `ONAIR_*` environment variables, then command-line flags.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Everything the server needs to run. Every field has a sane default, so `onair` with no
/// configuration at all serves on port 8080 with a demo room.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address for WHIP, WHEP, the API and the pages.
    pub http: SocketAddr,
    /// HTTPS listen address: HTTP/2 and HTTP/1.1 over TLS for every route (`"off"` disables).
    #[serde(with = "crate::http::tls::optional_addr")]
    pub https: Option<SocketAddr>,
    /// The HTTPS certificate (`[tls]`); a development certificate is made without one.
    pub tls: crate::http::tls::TlsConfig,
    /// When idle HTTP connections are closed, on both listeners (`[http_timeouts]`).
    pub http_timeouts: crate::http::listener::HttpTimeouts,
    /// UDP ports for media. Each PeerConnection takes one port of this range (webrtc 0.21 has
    /// no single-port mux), so the range bounds how many sessions can run at once; open it in
    /// the firewall.
    pub udp_ports: PortRange,
    /// The IP the media sockets bind to; `0.0.0.0` binds every non-loopback interface.
    pub udp_host: IpAddr,
    /// Public IP advertised as the host candidate when the server sits behind 1:1 NAT.
    pub public_ip: Option<IpAddr>,
    /// ICE-lite (RFC 8445 §2.5): the server only answers connectivity checks. Right for a
    /// server with reachable ports; turn off to run full ICE.
    pub ice_lite: bool,
    /// Where the JWT secret (and later recordings) live.
    pub data_dir: PathBuf,
    /// HS256 secret for tokens. When absent, one is created in `data_dir` on first start.
    pub jwt_secret: Option<String>,
    /// Private rooms (`[access]` in `onair.toml`).
    pub access: crate::auth::AccessConfig,
    /// Admission limits (`[limits]`): sessions per IP, viewers per room, rooms.
    pub limits: crate::http::limits::LimitsConfig,
    /// Reverse proxies in front of onair (addresses or CIDR ranges): for requests from them,
    /// the per-IP limits count the client named in `Forwarded` / `X-Forwarded-For` instead
    /// of the proxy. Empty (the default): those headers are ignored.
    pub trusted_proxies: Vec<crate::core::forwarded::IpNet>,
    /// STUN/TURN servers handed to clients in WHIP/WHEP `Link` headers (RFC 9725 §4.6).
    pub ice_servers: Vec<IceServer>,
    /// The embedded TURN server (`[turn]`), handed to clients in WHIP/WHEP `Link` headers.
    pub turn: onair_turn::TurnConfig,
    /// The room named in the ready-to-open links printed at start.
    pub demo_room: String,
    /// How long an empty room (no publisher, no viewer) is kept before it is dropped.
    pub room_grace_secs: u64,
    /// Packets queued per internal consumer of a track (HLS tap, composite) before packets are
    /// dropped for it. WHEP viewers are written in place; their queue is their connection's.
    pub viewer_queue: usize,
    /// Guests on stage (`[stage]` in `onair.toml`).
    pub stage: crate::room::StageConfig,
    /// Minimum interval between keyframe requests (PLI) sent to a publisher, per track
    /// (requests while one is outstanding join it; see `core::rtp::PliThrottle`). 300 ms is
    /// libwebrtc's own floor: a browser ignores keyframe requests closer together.
    pub pli_interval_ms: u64,
    /// A joining viewer whose track's newest keyframe began at most this long ago is sent it,
    /// and what followed, at once instead of waiting for a new one (0: always wait; see
    /// `core::rtp::ReplayWindow`). Its player starts up to this much behind and catches up;
    /// Chromium's jitter buffer takes 100 ms in its stride but not a second (see README).
    pub keyframe_replay_ms: u64,
    /// A session whose ICE/DTLS has not connected by then is closed.
    pub connect_timeout_secs: u64,
    /// Packets per track kept to answer viewers' NACKs.
    pub retransmit_cache: usize,
    /// Serve every room as LL-HLS at `/hls/{room}/` (the tap also feeds the recordings).
    pub hls: bool,
    /// Record every broadcast to `<data_dir>/recordings/`.
    pub recordings: bool,
    /// The room composite for LL-HLS and recordings (`[composite]`): guests on stage composed
    /// into one picture and one mixed audio track.
    pub composite: crate::egress::composite::CompositeConfig,
    /// hls.js for the live page, served at `/vendor/hls.min.js`: a file (e.g.
    /// `node_modules/hls.js/dist/hls.min.js`) or an `https://` URL to redirect to. Without it
    /// the live page uses the browser's own HLS (Safari) or explains what is missing.
    pub hls_js: Option<String>,
    /// Webhooks (`[webhooks]` in `onair.toml`): signed event POSTs to operator endpoints.
    pub webhooks: crate::ops::WebhookConfig,
    /// Chat limits (`[chat]` in `onair.toml`).
    pub chat: crate::core::chat::ChatLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
            https: Some(crate::http::tls::DEFAULT_HTTPS),
            tls: crate::http::tls::TlsConfig::default(),
            http_timeouts: crate::http::listener::HttpTimeouts::default(),
            udp_ports: PortRange {
                first: 50000,
                last: 51999,
            },
            udp_host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            public_ip: None,
            ice_lite: true,
            data_dir: PathBuf::from("./data"),
            jwt_secret: None,
            access: crate::auth::AccessConfig::default(),
            limits: crate::http::limits::LimitsConfig::default(),
            trusted_proxies: Vec::new(),
            ice_servers: Vec::new(),
            turn: onair_turn::TurnConfig::default(),
            demo_room: "demo".to_owned(),
            room_grace_secs: 30,
            viewer_queue: 512,
            stage: crate::room::StageConfig::default(),
            pli_interval_ms: 300,
            keyframe_replay_ms: 100,
            connect_timeout_secs: 10,
            retransmit_cache: 1024,
            hls: true,
            recordings: true,
            composite: crate::egress::composite::CompositeConfig::default(),
            hls_js: None,
            webhooks: crate::ops::WebhookConfig::default(),
            chat: crate::core::chat::ChatLimits::default(),
        }
    }
}

/// A STUN or TURN server as given to clients (`urls` like `stun:host:3478` or `turn:host`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// One or more `stun:`/`turn:`/`turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

/// An inclusive UDP port range, written `50000-51999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// Never true for a parsed range; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl FromStr for PortRange {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::Invalid(format!("udp port range `{s}`: expected FIRST-LAST"));
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a configuration was refused at start.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for [`Config`].
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Values given on the command line or in `ONAIR_*` variables; each overrides the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--http`
    pub http: Option<SocketAddr>,
    /// `--https` (`Some(None)`: `off`)
    pub https: Option<Option<SocketAddr>>,
    /// `--udp-ports`
    pub udp_ports: Option<PortRange>,
    /// `--udp-host`
    pub udp_host: Option<IpAddr>,
    /// `--public-ip`
    pub public_ip: Option<IpAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `ONAIR_JWT_SECRET`
    pub jwt_secret: Option<String>,
}

impl Config {
    /// Loads `file` (or `./onair.toml` when it exists and no file is named), applies the
    /// overrides and validates the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let default_file = Path::new("onair.toml");
        let file = match file {
            Some(f) => Some(f),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        let mut config = match file {
            Some(path) => Self::from_toml_file(path)?,
            None => Self::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.https {
            self.https = v;
        }
        if let Some(v) = o.http {
            self.http = v;
        }
        if let Some(v) = o.udp_ports {
            self.udp_ports = v;
        }
        if let Some(v) = o.udp_host {
            self.udp_host = v;
        }
        if let Some(v) = o.public_ip {
            self.public_ip = Some(v);
        }
        if let Some(v) = o.data_dir {
            self.data_dir = v;
        }
        if let Some(v) = o.jwt_secret {
            self.jwt_secret = Some(v);
        }
    }

    /// Checks values that serde cannot: ranges and consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        self.stage.validate().map_err(ConfigError::Invalid)?;
        if let Some(secret) = &self.jwt_secret
            && secret.len() < 16
        {
            return invalid("jwt_secret must be at least 16 characters");
        }
        self.access.validate().map_err(ConfigError::Invalid)?;
        if !crate::room::is_valid_room_name(&self.demo_room) {
            return invalid("demo_room must be 1-64 characters of [A-Za-z0-9_-]");
        }
        if self.viewer_queue < 16 || self.viewer_queue > 65536 {
            return invalid("viewer_queue must be within 16..=65536 packets");
        }
        if self.retransmit_cache < 16 || self.retransmit_cache > 32768 {
            return invalid("retransmit_cache must be within 16..=32768 packets");
        }
        if self.keyframe_replay_ms > 1000 {
            return invalid("keyframe_replay_ms must be within 0..=1000");
        }
        self.chat.validate().map_err(ConfigError::Invalid)?;
        self.tls.validate().map_err(ConfigError::Invalid)?;
        self.http_timeouts
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.composite.validate().map_err(ConfigError::Invalid)?;
        self.webhooks.validate().map_err(ConfigError::Invalid)?;
        if self.connect_timeout_secs == 0 {
            return invalid("connect_timeout_secs must be at least 1");
        }
        self.turn.validate().map_err(ConfigError::Invalid)?;
        for server in &self.ice_servers {
            if server.urls.is_empty() {
                return invalid("every ice_servers entry needs at least one url");
            }
            for url in &server.urls {
                let ok = ["stun:", "stuns:", "turn:", "turns:"]
                    .iter()
                    .any(|p| url.starts_with(p));
                if !ok || url.contains(['<', '>', '"', '\r', '\n']) {
                    return Err(ConfigError::Invalid(format!("ice server url `{url}`")));
                }
            }
        }
        Ok(())
    }

    /// Minimum interval between PLIs per track.
    pub fn pli_interval(&self) -> Duration {
        Duration::from_millis(self.pli_interval_ms)
    }

    /// How a room's track hubs buffer, remember and ask for keyframes.
    pub fn hub_config(&self) -> crate::room::HubConfig {
        crate::room::HubConfig {
            queue: self.viewer_queue,
            cache: self.retransmit_cache,
            pli_interval: self.pli_interval(),
            keyframe_replay: Duration::from_millis(self.keyframe_replay_ms),
        }
    }

    /// Grace period of an empty room.
    pub fn room_grace(&self) -> Duration {
        Duration::from_secs(self.room_grace_secs)
    }

    /// Time allowed for ICE + DTLS to connect.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_range_parses_and_rejects() {
        let r: PortRange = "50000-50200".parse().unwrap();
        assert_eq!((r.first, r.last, r.len()), (50000, 50200, 201));
        for bad in ["", "5000", "10-5", "0-10", "a-b", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_then_overrides_layer_over_defaults() {
        let dir = std::env::temp_dir().join(format!("onair-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("onair.toml");
        std::fs::write(
            &path,
            "udp_ports = \"40000-40010\"\ndemo_room = \"lobby\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            udp_ports: Some("41000-41010".parse().unwrap()),
            ..Default::default()
        };
        let c = Config::load(Some(&path), overrides).unwrap();
        assert_eq!(c.demo_room, "lobby");
        assert_eq!(c.udp_ports.first, 41000);
        assert_eq!(c.http.port(), 8080);
        std::fs::write(&path, "udp_port = 1\n").unwrap();
        let err = Config::load(Some(&path), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("udp_port"), "{err}");
        std::fs::write(&path, "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\n").unwrap();
        let c = Config::load(Some(&path), Overrides::default()).unwrap();
        let proxies: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(proxies, ["127.0.0.1/32", "10.0.0.0/8"]);
        std::fs::write(&path, "trusted_proxies = [\"10.0.0.0/33\"]\n").unwrap();
        let err = Config::load(Some(&path), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn validation_names_the_problem() {
        let c = Config {
            jwt_secret: Some("short".into()),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("jwt_secret"));
        let c = Config {
            ice_servers: vec![IceServer {
                urls: vec!["http://x".into()],
                ..Default::default()
            }],
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            keyframe_replay_ms: 1001,
            ..Config::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("keyframe_replay_ms")
        );
        let c = Config {
            keyframe_replay_ms: 0,
            ..Config::default()
        };
        assert_eq!(c.hub_config().keyframe_replay, Duration::ZERO);
        assert!(c.validate().is_ok());
    }
}
