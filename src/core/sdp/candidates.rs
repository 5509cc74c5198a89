//! Host-candidate rewriting for 1:1 NAT (ingest/egress signalling, pure): the answer we send
//! advertises the public address in place of the private one the sockets are bound to.
//!
//! webrtc 0.21 keeps `SettingEngine::with_nat_1to1_ips` but never applies it, so onair rewrites
//! its own answers. For an ICE-lite server this is the whole job: the client sends its checks to
//! the public address, the NAT maps them to the bound socket, and we answer from there.

use std::net::IpAddr;

/// Replaces the connection address of every `typ host` candidate (RFC 8839 §5.1) in `sdp` with
/// `public`. Other lines, and candidates of other types, are copied unchanged.
pub fn advertise_host_address(sdp: &str, public: IpAddr) -> String {
    let public = public.to_string();
    let mut out = String::with_capacity(sdp.len() + 64);
    for line in sdp.split_inclusive('\n') {
        match rewrite_candidate(line, &public) {
            Some(rewritten) => out.push_str(&rewritten),
            None => out.push_str(line),
        }
    }
    out
}

/// `a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...`
fn rewrite_candidate(line: &str, public: &str) -> Option<String> {
    let body = line.strip_prefix("a=candidate:")?;
    let content = body.trim_end_matches(['\r', '\n']);
    let ending = &body[content.len()..];
    let fields: Vec<&str> = content.split(' ').collect();
    if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
        return None;
    }
    let mut rewritten = String::with_capacity(line.len() + public.len());
    rewritten.push_str("a=candidate:");
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            rewritten.push(' ');
        }
        rewritten.push_str(if i == 4 { public } else { field });
    }
    rewritten.push_str(ending);
    Some(rewritten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_candidates_get_the_public_address() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 50001 typ host generation 0\r\n\
                   a=candidate:2 1 udp 1694498815 198.51.100.9 50001 typ srflx raddr 10.0.0.5 rport 50001\r\n\
                   a=candidate:3 1 udp 2130706431 10.0.0.5 50002 typ host\n";
        let out = advertise_host_address(sdp, "203.0.113.7".parse().unwrap());
        assert_eq!(
            out,
            "v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 50001 typ host generation 0\r\n\
             a=candidate:2 1 udp 1694498815 198.51.100.9 50001 typ srflx raddr 10.0.0.5 rport 50001\r\n\
             a=candidate:3 1 udp 2130706431 203.0.113.7 50002 typ host\n"
        );
    }

    #[test]
    fn malformed_candidates_and_ipv6_are_handled() {
        let sdp = "a=candidate:bad\r\na=candidate:1 1 udp 1 fd00::1 9 typ host\r\n";
        let out = advertise_host_address(sdp, "2001:db8::7".parse().unwrap());
        assert_eq!(
            out,
            "a=candidate:bad\r\na=candidate:1 1 udp 1 2001:db8::7 9 typ host\r\n"
        );
    }
}
