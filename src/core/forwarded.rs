//! The client's address behind a reverse proxy (control plane, before the per-IP admission
//! limits): `Forwarded` (RFC 7239) or `X-Forwarded-For`, believed only from the proxies the
//! operator lists in `trusted_proxies`. Pure.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: one address (`192.0.2.7`, `::1`) or a CIDR block (`10.0.0.0/8`,
/// `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this range (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, bits) = (usize::from(prefix / 8), prefix % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    bits == 0 || (a[whole] ^ b[whole]) >> (8 - bits) == 0
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is neither an IP address nor a CIDR range like 10.0.0.0/8");
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr).map_err(|_| bad())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The address a request comes from. `peer` is the TCP peer; when it is a trusted proxy, the
/// forwarding chain is read from the right (the hop nearest to onair) past every trusted
/// proxy to the first address that is not one: that is the client. `forwarded` holds the
/// request's `Forwarded` header lines, `x_forwarded_for` its `X-Forwarded-For` lines, in
/// order; `Forwarded` wins when both are there. An entry that is not an address (`unknown`,
/// an obfuscated `_name`, garbage) ends the walk at the proxy that wrote it, so a client
/// cannot hide behind one; a chain of trusted proxies only gives its leftmost address.
pub fn client_ip(
    peer: IpAddr,
    trusted: &[IpNet],
    forwarded: &[&str],
    x_forwarded_for: &[&str],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let chain: Vec<Option<IpAddr>> = if forwarded.is_empty() {
        x_forwarded_for
            .iter()
            .flat_map(|line| line.split(','))
            .map(|entry| parse_node(entry.trim()))
            .collect()
    } else {
        forwarded
            .iter()
            .flat_map(|line| split_outside_quotes(line, ','))
            .map(|element| {
                split_outside_quotes(element, ';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, value)| parse_node(unquote(value.trim())))
            })
            .collect()
    };
    let mut client = peer;
    for hop in chain.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// A node as written in `Forwarded: for=` (RFC 7239 §6: `192.0.2.43`, `192.0.2.43:47011`,
/// `[2001:db8::17]`, `[2001:db8::17]:4711`) or in `X-Forwarded-For` (also a bare IPv6).
fn parse_node(node: &str) -> Option<IpAddr> {
    let ip = if let Some(rest) = node.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        IpAddr::from_str(inside).ok()?
    } else if let Ok(ip) = IpAddr::from_str(node) {
        ip
    } else {
        let (host, port) = node.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        IpAddr::V4(host.parse().ok()?)
    };
    Some(ip.to_canonical())
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits `s` at `sep` where it is not inside a quoted string (RFC 9110 §5.6.4).
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut escaped = false;
    s.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            return true;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("::1")));
        let odd: IpNet = "192.168.1.128/25".parse().unwrap();
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.1.127")));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(
            one.contains(ip("::ffff:127.0.0.1")),
            "IPv4-mapped IPv6 peer"
        );
        assert!(!one.contains(ip("127.0.0.2")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/x",
        ] {
            let e = bad.parse::<IpNet>().unwrap_err();
            assert!(e.contains("CIDR"), "{bad}: {e}");
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.9");
        assert_eq!(client_ip(peer, &trusted, &[], &["198.51.100.1"]), peer);
        assert_eq!(client_ip(peer, &trusted, &["for=198.51.100.1"], &[]), peer);
        assert_eq!(client_ip(peer, &[], &[], &["198.51.100.1"]), peer);
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1"]);
        let proxy = ip("127.0.0.1");
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["198.51.100.1"]),
            ip("198.51.100.1")
        );
        // The client wrote its own header: only what the trusted proxies appended counts.
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["6.6.6.6, 198.51.100.1, 10.1.2.3"]),
            ip("198.51.100.1")
        );
        // Several header lines form one list, in order.
        assert_eq!(
            client_ip(
                proxy,
                &trusted,
                &[],
                &["6.6.6.6", "198.51.100.1 , 10.1.2.3"]
            ),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["2001:db8::9"]),
            ip("2001:db8::9")
        );
        // Only trusted addresses: the leftmost is the client (a LAN client behind the proxy).
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["10.9.9.9, 10.1.2.3"]),
            ip("10.9.9.9")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(proxy, &trusted, &[], &[]), proxy);
    }

    #[test]
    fn a_hop_that_is_not_an_address_ends_the_walk_at_the_proxy_that_wrote_it() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1"]);
        let proxy = ip("127.0.0.1");
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["198.51.100.1, unknown"]),
            proxy
        );
        assert_eq!(
            client_ip(proxy, &trusted, &[], &["198.51.100.1, garbage, 10.1.2.3"]),
            ip("10.1.2.3")
        );
        assert_eq!(client_ip(proxy, &trusted, &[], &[""]), proxy);
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it_and_wins_over_x_forwarded_for() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let proxy = ip("127.0.0.1");
        let cases = [
            ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
            ("For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"192.0.2.43:47011\"", "192.0.2.43"),
            ("for=6.6.6.6, for=192.0.2.43, for=10.0.0.1", "192.0.2.43"),
            ("proto=https;for=192.0.2.43;host=\"a;b,c\"", "192.0.2.43"),
            ("for=192.0.2.43, for=_hidden", "127.0.0.1"),
            ("for=192.0.2.43, for=unknown", "127.0.0.1"),
            ("for=\"[2001:db8::1]x\"", "127.0.0.1"),
        ];
        for (header, want) in cases {
            assert_eq!(
                client_ip(proxy, &trusted, &[header], &["198.51.100.99"]),
                ip(want),
                "{header}"
            );
        }
    }
}
