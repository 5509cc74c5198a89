//! Which peers a relay may reach (pure, no I/O). RFC 8656 §21.x (security considerations) and
//! RFC 8656 §7.2 leave it to the server to refuse peers it should not talk to: by default onair
//! never relays to loopback, private, link-local, shared (CGNAT), multicast or unspecified
//! addresses — except onair's own media sockets, which is the reason the relay exists.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

/// The peer-address rule an allocation's permissions and channels are checked against.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    /// Relay to private and loopback ranges too (a lab or a LAN deployment).
    pub allow_private: bool,
    /// IPs of onair's own media sockets (host candidates, public IP).
    pub media_ips: Vec<IpAddr>,
    /// onair's media UDP ports; on `media_ips` only these are reachable.
    pub media_ports: RangeInclusive<u16>,
}

impl PeerPolicy {
    /// A policy allowing onair's media at `media_ips` x `media_ports` and public addresses.
    pub fn new(
        allow_private: bool,
        media_ips: Vec<IpAddr>,
        media_ports: RangeInclusive<u16>,
    ) -> Self {
        Self {
            allow_private,
            media_ips,
            media_ports,
        }
    }

    /// Whether data may be relayed to `peer` (answer 403 Forbidden when not).
    pub fn allows(&self, peer: SocketAddr) -> bool {
        let ip = canonical(peer.ip());
        if never_reachable(ip) {
            return false;
        }
        if self.media_ips.contains(&ip) {
            // Our own address: the media sockets, never the TURN ports or anything else here.
            return self.media_ports.contains(&peer.port()) || self.allow_private;
        }
        self.allow_private || !is_restricted(ip)
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Addresses no configuration makes a valid peer.
fn never_reachable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    }
}

/// Loopback, private (RFC 1918), link-local, shared address space (RFC 6598), "this network",
/// unique-local (RFC 4193) and reserved ranges.
pub fn is_restricted(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => restricted_v6(v6),
    }
}

fn restricted_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || a == 0
        || (a == 100 && (64..=127).contains(&b))
        || a >= 240
}

fn restricted_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_ranges_are_refused_by_default() {
        let p = PeerPolicy::new(false, vec![], 50000..=51999);
        for bad in [
            "127.0.0.1:5000",
            "10.1.2.3:5000",
            "172.16.0.1:5000",
            "192.168.1.1:5000",
            "169.254.1.1:5000",
            "100.64.0.1:5000",
            "0.0.0.0:5000",
            "224.0.0.1:5000",
            "[::1]:5000",
            "[fe80::1]:5000",
            "[fd00::1]:5000",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert!(!p.allows(addr(bad)), "{bad}");
        }
        assert!(p.allows(addr("8.8.8.8:5000")));
        assert!(p.allows(addr("[2001:4860::1]:5000")));
    }

    #[test]
    fn own_media_sockets_are_allowed_only_on_media_ports() {
        let p = PeerPolicy::new(false, vec!["127.0.0.1".parse().unwrap()], 50000..=51999);
        assert!(p.allows(addr("127.0.0.1:50000")));
        assert!(p.allows(addr("[::ffff:127.0.0.1]:51999")));
        assert!(!p.allows(addr("127.0.0.1:3478")));
        assert!(!p.allows(addr("127.0.0.2:50000")));
        let public = PeerPolicy::new(false, vec!["203.0.113.9".parse().unwrap()], 50000..=50001);
        assert!(
            !public.allows(addr("203.0.113.9:8080")),
            "our own HTTP port"
        );
    }

    #[test]
    fn allow_private_opens_private_ranges_but_not_multicast() {
        let p = PeerPolicy::new(true, vec![], 50000..=51999);
        assert!(p.allows(addr("192.168.1.1:5000")));
        assert!(p.allows(addr("127.0.0.1:22")));
        assert!(!p.allows(addr("224.0.0.1:5000")));
    }
}
