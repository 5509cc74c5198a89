//! The embedded TURN server against real clients (I/O): `Link` headers with fresh REST
//! credentials, a relay-only webrtc-rs viewer playing a real H.264 broadcast through it, coturn's
//! own `turnutils_uclient` relaying through it over UDP and TCP, a real coturn accepting
//! onair-minted credentials, and wrong credentials, quotas and private peers refused.

use crate::common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use common::offer::{RawOptions, RawPeer};
use onair::auth::Role;
use onair_loadtest::media::VideoConfig;
use onair_loadtest::whip::{PublishOptions, Publisher};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::ErrorCodeAttribute;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_REQUEST, Getter, METHOD_ALLOCATE, METHOD_CREATE_PERMISSION, Message, MessageType, Method,
    Setter, TransactionId,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::turn::proto::PROTO_UDP;
use rtc::turn::proto::peeraddr::PeerAddress;
use rtc::turn::proto::reqtrans::RequestedTransport;
use tokio::net::UdpSocket;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionState, RTCSessionDescription,
};

const WAIT: Duration = Duration::from_secs(30);

/// One `Link: <url>; rel="ice-server"; username=...; credential=...` header, parsed.
#[derive(Debug, Clone)]
struct Link {
    url: String,
    username: Option<String>,
    credential: Option<String>,
}

fn links(headers: &reqwest::header::HeaderMap) -> Vec<Link> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.contains("rel=\"ice-server\""))
        .map(|v| {
            let url = v
                .split('>')
                .next()
                .unwrap()
                .trim_start_matches('<')
                .to_owned();
            let param = |name: &str| {
                let key = format!("{name}=\"");
                v.split("; ")
                    .find_map(|p| p.strip_prefix(&key))
                    .map(|p| p.trim_end_matches('"').to_owned())
            };
            Link {
                url,
                username: param("username"),
                credential: param("credential"),
            }
        })
        .collect()
}

fn turn_secret(s: &TestServer) -> String {
    let path = s.server.app().config.data_dir.join("turn-secret");
    std::fs::read_to_string(path)
        .expect("turn-secret in the data directory")
        .trim()
        .to_owned()
}

fn turn_udp_port(s: &TestServer) -> u16 {
    s.server
        .app()
        .turn
        .get()
        .expect("TURN runs")
        .udp_addr()
        .port()
}

async fn options(s: &TestServer, path: &str, bearer: Option<String>) -> reqwest::Response {
    let mut r = reqwest::Client::new().request(reqwest::Method::OPTIONS, s.url(path));
    if let Some(b) = bearer {
        r = r.header("authorization", b);
    }
    r.send().await.expect("OPTIONS")
}

#[tokio::test]
async fn whip_whep_answers_and_options_carry_fresh_turn_credentials() {
    let s = TestServer::start().await;
    let secret = turn_secret(&s);
    let turn = s
        .server
        .app()
        .turn
        .get()
        .expect("TURN on by default")
        .clone();

    let r = options(
        &s,
        "/whip/t1",
        Some(s.bearer("t1", Role::Broadcaster, "alice")),
    )
    .await;
    assert!(r.status().is_success());
    let got = links(r.headers());
    let urls: Vec<&str> = got.iter().map(|l| l.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            format!("turn:127.0.0.1:{}?transport=udp", turn.udp_addr().port()),
            format!(
                "turn:127.0.0.1:{}?transport=tcp",
                turn.tcp_addr().unwrap().port()
            ),
        ]
    );
    let username = got[0].username.clone().unwrap();
    assert!(username.ends_with(":alice"), "{username}");
    let expiry: u64 = username.split(':').next().unwrap().parse().unwrap();
    assert!(
        expiry > onair::auth::unix_now(),
        "credentials expire in the future"
    );
    assert_eq!(
        got[0].credential.as_deref(),
        Some(onair_turn::credentials::rest_password(secret.as_bytes(), &username).as_str()),
        "password = base64(HMAC-SHA1(secret, username))"
    );

    // No token, no publishing rights: no credentials.
    let r = options(&s, "/whip/t1", None).await;
    assert!(r.status().is_success());
    assert!(links(r.headers()).is_empty());

    // The WHEP 201 carries them too.
    let peer = RawPeer::new(RawOptions::default()).await;
    let r = reqwest::Client::new()
        .post(s.url("/whep/t1"))
        .header("content-type", "application/sdp")
        .body(peer.offer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = links(r.headers());
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].username.as_deref().unwrap().contains(":anon-"));
    s.stop().await;
}

struct ViewerEvents {
    gathered: tokio::sync::watch::Sender<bool>,
    state: tokio::sync::watch::Sender<RTCPeerConnectionState>,
    tracks: tokio::sync::mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ViewerEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered
            .send_replace(state == RTCIceGatheringState::Complete);
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

#[tokio::test]
async fn a_relay_only_webrtc_client_plays_through_the_embedded_turn() {
    let s = TestServer::start().await;
    let room = "relayed";
    let publisher = Publisher::connect(PublishOptions {
        base_url: s.base.clone(),
        room: room.into(),
        token: Some(s.token(room, Role::Broadcaster, "host")),
        video: Some(VideoConfig {
            width: 160,
            height: 120,
            fps: 15,
            bitrate_bps: 150_000,
            keyframe_interval_frames: 15,
        }),
        ..Default::default()
    })
    .await
    .expect("publisher connects");
    publisher
        .wait_connected(WAIT)
        .await
        .expect("publisher connected");

    // The ICE servers come first (OPTIONS), as a relay-only client needs them to gather.
    let r = options(&s, &format!("/whep/{room}"), None).await;
    let udp = links(r.headers())
        .into_iter()
        .find(|l| l.url.ends_with("transport=udp"))
        .expect("a TURN/UDP link for a public room's viewer");
    let (gathered, mut gathered_rx) = tokio::sync::watch::channel(false);
    let (state, mut state_rx) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    let (tracks, mut tracks_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().unwrap();
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![RTCIceServer {
            urls: vec![udp.url.clone()],
            username: udp.username.clone().unwrap(),
            credential: udp.credential.clone().unwrap(),
        }])
        .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
        .build();
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(config)
            .with_media_engine(engine)
            .with_handler(Arc::new(ViewerEvents {
                gathered,
                state,
                tracks,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .unwrap(),
    );
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    }
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), gathered_rx.wait_for(|g| *g)).await;
    let offer = pc.local_description().await.unwrap().sdp;
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    assert!(
        !candidates.is_empty(),
        "relay candidates gathered:\n{offer}"
    );
    assert!(
        candidates.iter().all(|c| c.contains("typ relay")),
        "relay-only offers nothing but relay candidates: {candidates:?}"
    );
    let answer = reqwest::Client::new()
        .post(s.url(&format!("/whep/{room}")))
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let sdp = answer.text().await.unwrap();
    pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap())
        .await
        .unwrap();
    tokio::time::timeout(
        WAIT,
        state_rx.wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("the relayed viewer connects")
    .unwrap();

    // Real H.264 arrives over the relay.
    let mut video_packets = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while video_packets < 20 && tokio::time::Instant::now() < deadline {
        let Ok(Some(track)) = tokio::time::timeout(Duration::from_secs(5), tracks_rx.recv()).await
        else {
            continue;
        };
        if track.kind().await != RtpCodecKind::Video {
            continue;
        }
        while video_packets < 20 {
            match tokio::time::timeout(Duration::from_secs(5), track.poll()).await {
                Ok(Some(TrackRemoteEvent::OnRtpPacket(_))) => video_packets += 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
    assert!(
        video_packets >= 20,
        "video packets through the relay: {video_packets}"
    );
    let stats = s.server.app().turn.get().unwrap().snapshot();
    println!("relay-only viewer: {video_packets} video packets; TURN stats {stats:?}");
    assert!(stats.active_allocations >= 1);
    assert!(
        stats.bytes_to_clients > 10_000,
        "media went through the relay: {stats:?}"
    );
    assert!(
        stats.bytes_to_peers > 0,
        "ICE/DTLS/RTCP went out through the relay"
    );
    let _ = pc.close().await;
    publisher.close().await.ok();
    s.stop().await;
}

/// Runs coturn's `turnutils_uclient` (client-to-client through two allocations) and returns
/// (messages sent, messages received), or `None` when coturn is not installed.
fn uclient(
    port: u16,
    username: &str,
    password: &str,
    extra: &[&str],
) -> Option<(u64, u64, String)> {
    let mut args = vec!["-y", "-c", "-n", "10", "-m", "1", "-l", "120", "-z", "5"];
    args.extend_from_slice(extra);
    let port = port.to_string();
    args.extend_from_slice(&["-p", &port, "-u", username, "-w", password, "127.0.0.1"]);
    let out = match Command::new("turnutils_uclient")
        .args(&args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("turnutils_uclient: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let totals = text
        .lines()
        .rfind(|l| l.contains("start_mclient: tot_send_msgs="))
        .map(|l| {
            let num = |key: &str| -> u64 {
                let rest = &l[l.find(key).unwrap() + key.len()..];
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            (num("tot_send_msgs="), num("tot_recv_msgs="))
        })
        .unwrap_or((0, 0));
    Some((totals.0, totals.1, text))
}

#[tokio::test]
async fn coturns_own_client_relays_through_onair_over_udp_and_tcp() {
    // uclient relays between its own two allocations, both on 127.0.0.1: a private peer, so
    // this server allows private peers.
    let s = TestServer::start_with(|c| c.turn.allow_private = true).await;
    let turn = s.server.app().turn.get().unwrap().clone();
    let creds = turn.credentials("uclient");
    let udp = turn.udp_addr().port();
    let tcp = turn.tcp_addr().unwrap().port();
    for (port, mode) in [(udp, vec![]), (udp, vec!["-s"]), (tcp, vec!["-t"])] {
        let Some((sent, received, log)) = tokio::task::spawn_blocking({
            let (u, p) = (creds.username.clone(), creds.password.clone());
            let mode = mode.clone();
            move || uclient(port, &u, &p, &mode)
        })
        .await
        .unwrap() else {
            println!(
                "SKIPPED: turnutils_uclient is not installed (scripts/setup.sh installs coturn)"
            );
            return;
        };
        println!("uclient {mode:?} via onair: sent {sent}, received {received}");
        assert!(
            sent > 0 && received > 0,
            "uclient {mode:?} relayed nothing:\n{log}"
        );
    }
    let stats = turn.snapshot();
    println!("onair TURN after uclient: {stats:?}");
    assert!(stats.total_allocations >= 6, "{stats:?}");
    // Wrong password: nothing allocates and the failure is counted.
    let failures = stats.auth_failures;
    let r = tokio::task::spawn_blocking(move || uclient(udp, &creds.username, "wrong", &[]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.1, 0, "wrong credentials relayed:\n{}", r.2);
    assert!(turn.snapshot().auth_failures > failures);
    s.stop().await;
}

/// A free UDP+TCP port on loopback for coturn.
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Coturn(Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_real_coturn_accepts_onair_minted_credentials() {
    let s = TestServer::start().await;
    let secret = turn_secret(&s);
    let port = free_port();
    let relay_min = 20000 + (port % 20000);
    let spawned = Command::new("turnserver")
        .args([
            "-n",
            "--listening-ip=127.0.0.1",
            &format!("--listening-port={port}"),
            "--relay-ip=127.0.0.1",
            &format!("--min-port={relay_min}"),
            &format!("--max-port={}", relay_min + 50),
            "--use-auth-secret",
            &format!("--static-auth-secret={secret}"),
            "--realm=onair",
            "--no-tls",
            "--no-dtls",
            "--allow-loopback-peers",
            "--no-cli",
            "--log-file=stdout",
            "--simple-log",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _coturn = match spawned {
        Ok(child) => Coturn(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: turnserver (coturn) is not installed; scripts/setup.sh installs it");
            return;
        }
        Err(e) => panic!("turnserver: {e}"),
    };
    // Wait for coturn to answer a STUN Binding.
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ready = false;
    for _ in 0..50 {
        let mut m = Message::new();
        m.build(&[
            Box::new(MessageType::new(
                rtc::stun::message::METHOD_BINDING,
                CLASS_REQUEST,
            )) as Box<dyn Setter>,
            Box::new(TransactionId::new()),
        ])
        .unwrap();
        probe.send_to(&m.raw, ("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 512];
        if tokio::time::timeout(Duration::from_millis(100), probe.recv_from(&mut buf))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "coturn answers on {port}");
    // Credentials minted by onair (as its Link headers carry them) allocate and relay on coturn.
    let creds = s.server.app().turn.get().unwrap().credentials("viewer-7");
    let (u, p) = (creds.username.clone(), creds.password.clone());
    let (sent, received, log) = tokio::task::spawn_blocking(move || uclient(port, &u, &p, &[]))
        .await
        .unwrap()
        .expect("turnutils_uclient ships with coturn");
    println!("coturn with onair credentials: sent {sent}, received {received}");
    assert!(
        sent > 0 && received > 0,
        "coturn refused onair's credentials:\n{log}"
    );
    // Another secret's credentials do not.
    let other = onair_turn::mint(
        b"not-the-secret-of-this-onair",
        "viewer-7",
        600,
        onair::auth::unix_now(),
    );
    let (_, received, log) =
        tokio::task::spawn_blocking(move || uclient(port, &other.username, &other.password, &[]))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(received, 0, "coturn took foreign credentials:\n{log}");
    s.stop().await;
}

/// A minimal TURN client on one UDP socket: the 401 round, then authenticated requests.
struct RawTurn {
    socket: UdpSocket,
    server: SocketAddr,
    username: String,
    password: String,
    nonce: String,
}

impl RawTurn {
    async fn new(server: SocketAddr, username: &str, password: &str) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            username: username.into(),
            password: password.into(),
            nonce: String::new(),
        }
    }

    async fn exchange(&self, method: Method, attrs: Vec<Box<dyn Setter>>, signed: bool) -> Message {
        let crypto = rtc::crypto::default_provider().unwrap();
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(MessageType::new(method, CLASS_REQUEST)),
            Box::new(TransactionId::new()),
        ];
        setters.extend(attrs);
        if signed {
            setters.push(Box::new(TextAttribute::new(
                ATTR_USERNAME,
                self.username.clone(),
            )));
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, "onair".into())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, self.nonce.clone())));
            setters.push(Box::new(
                MessageIntegrity::new_long_term_integrity_with_provider(
                    self.username.clone(),
                    "onair".into(),
                    self.password.clone(),
                    crypto.crypto(),
                )
                .unwrap(),
            ));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        self.socket.send_to(&m.raw, self.server).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.socket.recv_from(&mut buf))
            .await
            .expect("the TURN server answers")
            .unwrap();
        let mut reply = Message::new();
        reply.unmarshal_binary(&buf[..n]).unwrap();
        reply
    }

    /// Sends `method` signed, after a 401 round when no nonce is known yet; the error code.
    async fn request(
        &mut self,
        method: Method,
        attrs: impl Fn() -> Vec<Box<dyn Setter>>,
    ) -> Option<u16> {
        if self.nonce.is_empty() {
            let r = self.exchange(method, attrs(), false).await;
            assert_eq!(code(&r), Some(401));
            self.nonce = TextAttribute::get_from_as(&r, ATTR_NONCE).unwrap().text;
        }
        code(&self.exchange(method, attrs(), true).await)
    }
}

fn code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok().map(|_| e.code.0)
}

fn udp_transport() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: PROTO_UDP,
    })]
}

fn peer(addr: &str) -> Vec<Box<dyn Setter>> {
    let a: SocketAddr = addr.parse().unwrap();
    vec![Box::new(PeerAddress {
        ip: a.ip(),
        port: a.port(),
    })]
}

#[tokio::test]
async fn wrong_credentials_quota_and_private_peers_are_refused() {
    let s = TestServer::start_with(|c| c.turn.user_quota = 1).await;
    let turn = s.server.app().turn.get().unwrap().clone();
    let addr = SocketAddr::new("127.0.0.1".parse().unwrap(), turn_udp_port(&s));
    let good = turn.credentials("mallory");

    let mut wrong = RawTurn::new(addr, &good.username, "guessed").await;
    assert_eq!(
        wrong.request(METHOD_ALLOCATE, udp_transport).await,
        Some(401)
    );
    let expired = onair_turn::mint(
        turn_secret(&s).as_bytes(),
        "mallory",
        60,
        onair::auth::unix_now() - 3600,
    );
    let mut old = RawTurn::new(addr, &expired.username, &expired.password).await;
    assert_eq!(old.request(METHOD_ALLOCATE, udp_transport).await, Some(401));
    assert_eq!(turn.snapshot().auth_failures, 2);

    let mut first = RawTurn::new(addr, &good.username, &good.password).await;
    assert_eq!(first.request(METHOD_ALLOCATE, udp_transport).await, None);
    // The user's one allocation is taken: 486 from another socket.
    let mut second = RawTurn::new(addr, &good.username, &good.password).await;
    assert_eq!(
        second.request(METHOD_ALLOCATE, udp_transport).await,
        Some(486)
    );

    // Private and loopback peers are forbidden; onair's own media ports are not.
    for forbidden in ["10.0.0.8:50000", "192.168.0.1:50000", "127.0.0.1:22"] {
        assert_eq!(
            first
                .request(METHOD_CREATE_PERMISSION, || peer(forbidden))
                .await,
            Some(403),
            "{forbidden}"
        );
    }
    let media = format!("127.0.0.1:{}", s.server.app().config.udp_ports.first);
    assert_eq!(
        first
            .request(METHOD_CREATE_PERMISSION, || peer(&media))
            .await,
        None
    );
    let stats = turn.snapshot();
    assert_eq!(
        (
            stats.active_allocations,
            stats.forbidden_peers,
            stats.quota_rejections
        ),
        (1, 3, 1)
    );
    s.stop().await;
}
