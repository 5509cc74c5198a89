//! Scenario tests of the sans-IO TURN core on a fake clock: authentication, quotas, the peer
//! policy, the data paths and every expiry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter, METHOD_ALLOCATE,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_REFRESH, METHOD_SEND,
    Message, MessageType, Method, Setter, TransactionId,
};
use stun::textattrs::TextAttribute;
use turn_proto::proto::PROTO_UDP;
use turn_proto::proto::channum::ChannelNumber;
use turn_proto::proto::data::Data;
use turn_proto::proto::lifetime::Lifetime;
use turn_proto::proto::peeraddr::PeerAddress;
use turn_proto::proto::relayaddr::RelayedAddress;
use turn_proto::proto::reqtrans::RequestedTransport;

use super::*;
use crate::credentials::{mint, provider};
use crate::policy::PeerPolicy;

const SECRET: &[u8] = b"a-test-secret-of-some-length";
const UNIX0: u64 = 1_800_000_000;
const RELAY: &str = "203.0.113.1:49000";
const PEER: &str = "198.51.100.7:40000";

struct Fixture {
    core: TurnCore,
    stats: Arc<TurnStats>,
    t0: Instant,
}

fn fixture(user_quota: usize, total_quota: usize) -> Fixture {
    let stats = Arc::new(TurnStats::default());
    let core = TurnCore::new(
        CoreConfig {
            realm: "onair".into(),
            secret: SECRET.to_vec(),
            nonce_key: [7; 32],
            user_quota,
            total_quota,
            max_lifetime: Duration::from_secs(3600),
            policy: PeerPolicy::new(false, vec!["127.0.0.1".parse().unwrap()], 50000..=51999),
            relay_ipv6: false,
        },
        stats.clone(),
    );
    Fixture {
        core,
        stats,
        t0: Instant::now(),
    }
}

impl Fixture {
    fn at(&self, secs: u64) -> Now {
        Now {
            mono: self.t0 + Duration::from_secs(secs),
            unix: UNIX0 + secs,
        }
    }
}

fn udp(addr: &str) -> ClientId {
    ClientId {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
    }
}

/// A TURN client's view: credentials and the nonce it was last given.
struct Client {
    id: ClientId,
    username: String,
    password: String,
    nonce: String,
}

fn request(method: Method, attrs: Vec<Box<dyn Setter>>, auth: Option<&Client>) -> Vec<u8> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(MessageType::new(method, CLASS_REQUEST)),
        Box::new(TransactionId::new()),
    ];
    setters.extend(attrs);
    if let Some(c) = auth {
        setters.push(Box::new(TextAttribute::new(
            ATTR_USERNAME,
            c.username.clone(),
        )));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, "onair".into())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, c.nonce.clone())));
        setters.push(Box::new(
            MessageIntegrity::new_long_term_integrity_with_provider(
                c.username.clone(),
                "onair".into(),
                c.password.clone(),
                provider().crypto(),
            )
            .unwrap(),
        ));
    }
    let mut m = Message::new();
    m.build(&setters).unwrap();
    m.raw
}

fn decode(bytes: &[u8]) -> Message {
    let mut m = Message::new();
    m.unmarshal_binary(bytes).unwrap();
    m
}

fn error_code(bytes: &[u8]) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(&decode(bytes)).ok().map(|_| e.code.0)
}

fn reply(action: ClientAction) -> Vec<u8> {
    match action {
        ClientAction::Reply(b) => b,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn allocate_request() -> Vec<Box<dyn Setter>> {
    vec![Box::new(RequestedTransport {
        protocol: PROTO_UDP,
    })]
}

/// Runs the 401 challenge and returns a client holding the nonce.
fn challenged(f: &mut Fixture, addr: &str, user: &str, secs: u64) -> Client {
    let id = udp(addr);
    let r = reply(f.core.handle_client(
        id,
        &request(METHOD_ALLOCATE, allocate_request(), None),
        f.at(secs),
    ));
    assert_eq!(error_code(&r), Some(401));
    let m = decode(&r);
    assert_eq!(
        TextAttribute::get_from_as(&m, ATTR_REALM).unwrap().text,
        "onair"
    );
    let nonce = TextAttribute::get_from_as(&m, ATTR_NONCE).unwrap().text;
    let c = mint(SECRET, user, 3600, UNIX0);
    Client {
        id,
        username: c.username,
        password: c.password,
        nonce,
    }
}

/// Challenge + authenticated Allocate + relay bound: a ready allocation.
fn allocated(f: &mut Fixture, addr: &str, user: &str) -> (Client, AllocId) {
    let c = challenged(f, addr, user, 0);
    let action = f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    );
    let ClientAction::Allocate(p) = action else {
        panic!("expected Allocate, got {action:?}")
    };
    let r = f
        .core
        .finish_allocate(&p, Some(RELAY.parse().unwrap()), f.at(0))
        .unwrap();
    let m = decode(&r);
    assert_eq!(m.typ.class, CLASS_SUCCESS_RESPONSE);
    let mut relayed = RelayedAddress::default();
    relayed.get_from(&m).unwrap();
    assert_eq!(
        SocketAddr::new(relayed.ip, relayed.port),
        RELAY.parse().unwrap()
    );
    // The response is signed with the client's long-term key.
    let key = crate::credentials::long_term_key(&c.username, "onair", &c.password);
    MessageIntegrity::check(&mut decode(&r), &key, provider().crypto()).unwrap();
    (c, p.alloc)
}

fn peer_addr(p: &str) -> Box<dyn Setter> {
    let a: SocketAddr = p.parse().unwrap();
    Box::new(PeerAddress {
        ip: a.ip(),
        port: a.port(),
    })
}

#[test]
fn allocate_needs_a_401_round_then_long_term_credentials() {
    let mut f = fixture(4, 10);
    let (c, _) = allocated(&mut f, "192.0.2.10:5000", "alice");
    assert_eq!(f.core.allocation_count(), 1);
    assert_eq!(f.stats.snapshot().active_allocations, 1);
    assert_eq!(f.stats.snapshot().total_allocations, 1);
    // A second Allocate on the same 5-tuple is a mismatch.
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), Some(437));
}

#[test]
fn a_retransmitted_allocate_gets_the_same_answer() {
    let mut f = fixture(4, 10);
    let c = challenged(&mut f, "192.0.2.10:5000", "alice", 0);
    let req = request(METHOD_ALLOCATE, allocate_request(), Some(&c));
    let ClientAction::Allocate(p) = f.core.handle_client(c.id, &req, f.at(0)) else {
        panic!()
    };
    assert_eq!(
        f.core.handle_client(c.id, &req, f.at(0)),
        ClientAction::None,
        "still binding"
    );
    let first = f
        .core
        .finish_allocate(&p, Some(RELAY.parse().unwrap()), f.at(0))
        .unwrap();
    assert_eq!(reply(f.core.handle_client(c.id, &req, f.at(1))), first);
}

#[test]
fn wrong_and_expired_credentials_are_refused_and_counted() {
    let mut f = fixture(4, 10);
    let mut c = challenged(&mut f, "192.0.2.10:5000", "alice", 0);
    c.password = "not-the-password".into();
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(401));
    // Minted with the right secret but already expired.
    let old = mint(SECRET, "alice", 10, UNIX0 - 100);
    c.username = old.username;
    c.password = old.password;
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(401));
    // Another secret's credentials.
    let other = mint(b"another-secret-entirely", "alice", 600, UNIX0);
    c.username = other.username;
    c.password = other.password;
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(401));
    assert_eq!(f.stats.snapshot().auth_failures, 3);
    assert_eq!(f.core.allocation_count(), 0);
}

#[test]
fn an_old_nonce_is_stale_and_a_new_one_is_handed_out() {
    let mut f = fixture(4, 10);
    let c = challenged(&mut f, "192.0.2.10:5000", "alice", 0);
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(601),
    ));
    assert_eq!(error_code(&r), Some(438));
    let fresh = TextAttribute::get_from_as(&decode(&r), ATTR_NONCE)
        .unwrap()
        .text;
    assert_ne!(fresh, c.nonce);
    // A nonce made up by the client, or issued to another address, is stale too.
    let mut forged = Client {
        nonce: "0-00".into(),
        ..c
    };
    let r = reply(f.core.handle_client(
        forged.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&forged)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), Some(438));
    forged.nonce = fresh;
    forged.id = udp("192.0.2.99:5000");
    let r = reply(f.core.handle_client(
        forged.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&forged)),
        f.at(601),
    ));
    assert_eq!(error_code(&r), Some(438));
}

#[test]
fn quotas_per_user_and_in_total_answer_486() {
    let mut f = fixture(2, 3);
    allocated(&mut f, "192.0.2.10:5000", "alice");
    allocated(&mut f, "192.0.2.10:5001", "alice");
    let c = challenged(&mut f, "192.0.2.10:5002", "alice", 0);
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(486));
    allocated(&mut f, "192.0.2.11:5000", "bob");
    let c = challenged(&mut f, "192.0.2.12:5000", "carol", 0);
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(486), "total quota");
    assert_eq!(f.stats.snapshot().quota_rejections, 2);
}

#[test]
fn private_peers_are_forbidden_but_onair_media_is_not() {
    let mut f = fixture(4, 10);
    let (c, _) = allocated(&mut f, "192.0.2.10:5000", "alice");
    for bad in [
        "10.0.0.1:50000",
        "127.0.0.1:22",
        "192.168.1.1:9",
        "169.254.0.1:50000",
    ] {
        let r = reply(f.core.handle_client(
            c.id,
            &request(METHOD_CREATE_PERMISSION, vec![peer_addr(bad)], Some(&c)),
            f.at(1),
        ));
        assert_eq!(error_code(&r), Some(403), "{bad}");
    }
    let r = reply(f.core.handle_client(
        c.id,
        &request(
            METHOD_CREATE_PERMISSION,
            vec![peer_addr("127.0.0.1:50001")],
            Some(&c),
        ),
        f.at(1),
    ));
    assert_eq!(error_code(&r), None);
    let bind = vec![
        Box::new(ChannelNumber(0x4001)) as Box<dyn Setter>,
        peer_addr("10.0.0.1:50000"),
    ];
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_CHANNEL_BIND, bind, Some(&c)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), Some(403));
    assert_eq!(f.stats.snapshot().forbidden_peers, 5);
}

#[test]
fn channel_data_flows_both_ways_without_copies() {
    let mut f = fixture(4, 10);
    let (c, alloc) = allocated(&mut f, "192.0.2.10:5000", "alice");
    let peer: SocketAddr = PEER.parse().unwrap();
    // Nothing is relayed from a peer without a permission.
    let mut buf = vec![0u8; 4 + 3];
    buf[4..].copy_from_slice(b"abc");
    assert_eq!(
        f.core.handle_peer(alloc, peer, &mut buf, 3, f.at(1).mono),
        PeerAction::Drop
    );
    let bind = vec![
        Box::new(ChannelNumber(0x4000)) as Box<dyn Setter>,
        peer_addr(PEER),
    ];
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_CHANNEL_BIND, bind, Some(&c)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), None);
    // Client -> peer.
    let cd = [0x40, 0x00, 0x00, 0x02, b'h', b'i', 0, 0];
    assert_eq!(
        f.core.handle_client(c.id, &cd, f.at(2)),
        ClientAction::ToPeer {
            alloc,
            peer,
            range: 4..6
        }
    );
    // Peer -> client: the header is written in front of the payload.
    assert_eq!(
        f.core.handle_peer(alloc, peer, &mut buf, 3, f.at(2).mono),
        PeerAction::ChannelData {
            client: c.id,
            len: 7
        }
    );
    assert_eq!(&buf, &[0x40, 0x00, 0x00, 0x03, b'a', b'b', b'c']);
    // An unbound channel and a truncated message go nowhere.
    assert_eq!(
        f.core
            .handle_client(c.id, &[0x40, 0x01, 0, 1, 9, 0, 0, 0], f.at(2)),
        ClientAction::None
    );
    assert_eq!(
        f.core
            .handle_client(c.id, &[0x40, 0x00, 0, 9, 9, 0, 0, 0], f.at(2)),
        ClientAction::None
    );
    // A channel number outside 0x4000-0x7FFE, or a second number for the same peer: 400.
    for n in [0x3FFF, 0x7FFF, 0x4002] {
        let bind = vec![
            Box::new(ChannelNumber(n)) as Box<dyn Setter>,
            peer_addr(PEER),
        ];
        let r = reply(f.core.handle_client(
            c.id,
            &request(METHOD_CHANNEL_BIND, bind, Some(&c)),
            f.at(3),
        ));
        assert_eq!(error_code(&r), Some(400), "{n:#x}");
    }
}

#[test]
fn send_and_data_indications_without_a_channel() {
    let mut f = fixture(4, 10);
    let (c, alloc) = allocated(&mut f, "192.0.2.10:5000", "alice");
    let peer: SocketAddr = PEER.parse().unwrap();
    let send = |payload: &[u8]| {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(TransactionId::new()),
            peer_addr(PEER),
            Box::new(Data(payload.to_vec())),
        ];
        m.build(&setters).unwrap();
        m.raw
    };
    let before = send(b"early");
    assert_eq!(
        f.core.handle_client(c.id, &before, f.at(1)),
        ClientAction::None,
        "no permission yet"
    );
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_CREATE_PERMISSION, vec![peer_addr(PEER)], Some(&c)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), None);
    let msg = send(b"hello");
    match f.core.handle_client(c.id, &msg, f.at(2)) {
        ClientAction::ToPeer {
            alloc: a,
            peer: p,
            range,
        } => {
            assert_eq!((a, p, &msg[range]), (alloc, peer, &b"hello"[..]));
        }
        other => panic!("{other:?}"),
    }
    let mut buf = vec![0u8; 4 + 4];
    buf[4..].copy_from_slice(b"pong");
    let PeerAction::Indication { client, bytes } =
        f.core.handle_peer(alloc, peer, &mut buf, 4, f.at(2).mono)
    else {
        panic!("expected a Data indication")
    };
    assert_eq!(client, c.id);
    let m = decode(&bytes);
    assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
    let mut data = Data::default();
    data.get_from(&m).unwrap();
    assert_eq!(data.0, b"pong");
}

#[test]
fn permissions_channels_and_allocations_expire() {
    let mut f = fixture(4, 10);
    let (c, alloc) = allocated(&mut f, "192.0.2.10:5000", "alice");
    let peer: SocketAddr = PEER.parse().unwrap();
    let bind = vec![
        Box::new(ChannelNumber(0x4000)) as Box<dyn Setter>,
        peer_addr(PEER),
    ];
    reply(
        f.core
            .handle_client(c.id, &request(METHOD_CHANNEL_BIND, bind, Some(&c)), f.at(0)),
    );
    let mut buf = vec![0u8; 5];
    assert!(matches!(
        f.core.handle_peer(alloc, peer, &mut buf, 1, f.at(299).mono),
        PeerAction::ChannelData { .. }
    ));
    // The permission (300 s) lapses before the channel (600 s) and blocks both directions.
    assert_eq!(
        f.core.handle_peer(alloc, peer, &mut buf, 1, f.at(301).mono),
        PeerAction::Drop
    );
    assert_eq!(
        f.core
            .handle_client(c.id, &[0x40, 0, 0, 1, 1, 0, 0, 0], f.at(301)),
        ClientAction::None
    );
    // Refresh keeps the allocation past its first 600 s.
    let refresh = vec![Box::new(Lifetime(Duration::from_secs(1200))) as Box<dyn Setter>];
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_REFRESH, refresh, Some(&c)),
        f.at(500),
    ));
    let mut lifetime = Lifetime::default();
    lifetime.get_from(&decode(&r)).unwrap();
    assert_eq!(lifetime.0, Duration::from_secs(1200));
    assert!(f.core.expire(f.at(700).mono).is_empty());
    assert_eq!(f.core.expire(f.at(1701).mono), vec![alloc]);
    assert_eq!(f.stats.snapshot().active_allocations, 0);
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_REFRESH, vec![], Some(&c)),
        f.at(1702),
    ));
    assert_eq!(
        error_code(&r),
        Some(438),
        "the nonce of t=0 is stale by now"
    );
    let c = Client {
        nonce: TextAttribute::get_from_as(&decode(&r), ATTR_NONCE)
            .unwrap()
            .text,
        ..c
    };
    let r = reply(f.core.handle_client(
        c.id,
        &request(METHOD_REFRESH, vec![], Some(&c)),
        f.at(1702),
    ));
    assert_eq!(error_code(&r), Some(437));
}

#[test]
fn refresh_with_lifetime_zero_releases_and_frees_the_quota() {
    let mut f = fixture(1, 10);
    let (c, alloc) = allocated(&mut f, "192.0.2.10:5000", "alice");
    let zero = vec![Box::new(Lifetime(Duration::ZERO)) as Box<dyn Setter>];
    match f
        .core
        .handle_client(c.id, &request(METHOD_REFRESH, zero, Some(&c)), f.at(5))
    {
        ClientAction::Release { alloc: a, reply } => {
            assert_eq!(a, alloc);
            assert_eq!(
                decode(&reply).typ,
                MessageType::new(METHOD_REFRESH, CLASS_SUCCESS_RESPONSE)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.core.allocation_count(), 0);
    allocated(&mut f, "192.0.2.10:5001", "alice");
}

#[test]
fn another_users_credentials_cannot_touch_an_allocation() {
    let mut f = fixture(4, 10);
    let (c, _) = allocated(&mut f, "192.0.2.10:5000", "alice");
    let bob = mint(SECRET, "bob", 3600, UNIX0);
    let intruder = Client {
        username: bob.username,
        password: bob.password,
        ..c
    };
    let r = reply(f.core.handle_client(
        intruder.id,
        &request(METHOD_REFRESH, vec![], Some(&intruder)),
        f.at(1),
    ));
    assert_eq!(error_code(&r), Some(441));
}

#[test]
fn a_failed_relay_bind_answers_508_and_returns_the_quota() {
    let mut f = fixture(1, 10);
    let c = challenged(&mut f, "192.0.2.10:5000", "alice", 0);
    let ClientAction::Allocate(p) = f.core.handle_client(
        c.id,
        &request(METHOD_ALLOCATE, allocate_request(), Some(&c)),
        f.at(0),
    ) else {
        panic!()
    };
    let r = f.core.finish_allocate(&p, None, f.at(0)).unwrap();
    assert_eq!(error_code(&r), Some(508));
    allocated(&mut f, "192.0.2.10:5001", "alice");
}

#[test]
fn garbage_and_unknown_requests_do_not_panic() {
    let mut f = fixture(4, 10);
    let id = udp("192.0.2.10:5000");
    for junk in [
        &[][..],
        &[0u8; 3],
        &[0x40, 0, 0xff, 0xff],
        &[0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xa4, 0x42],
        &[0xffu8; 40],
    ] {
        assert_eq!(f.core.handle_client(id, junk, f.at(0)), ClientAction::None);
    }
    let r = reply(f.core.handle_client(
        id,
        &request(stun::message::METHOD_CONNECT, vec![], None),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(400));
    let r = reply(
        f.core
            .handle_client(id, &request(METHOD_ALLOCATE, vec![], None), f.at(0)),
    );
    assert_eq!(error_code(&r), Some(401));
}

mod unknown_attributes;
