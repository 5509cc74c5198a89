//! STUN/TURN wire helpers for the core (pure): building responses with MESSAGE-INTEGRITY and
//! FINGERPRINT (RFC 8489 §14.5, §14.7), decoding every XOR-PEER-ADDRESS (RFC 8656 §18.3) and
//! finding the DATA attribute inside a Send indication without copying it (RFC 8656 §11.4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use stun::attributes::{ATTR_SOFTWARE, AttrType};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{MAGIC_COOKIE, Message, MessageClass, MessageType, Method, Setter};
use stun::textattrs::TextAttribute;

use crate::credentials::provider;

/// SOFTWARE sent in every response (RFC 8489 §14.14).
const SOFTWARE: &str = "onair-turn";

/// Encodes a response (or indication) to `request` of `class` carrying `attrs`, signed with
/// `key` when the request was authenticated, and always fingerprinted.
pub(crate) fn reply(
    request: &Message,
    method: Method,
    class: MessageClass,
    attrs: Vec<Box<dyn Setter>>,
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut setters: Vec<Box<dyn Setter + '_>> = Vec::with_capacity(attrs.len() + 5);
    setters.push(Box::new(MessageType::new(method, class)));
    setters.push(Box::new(request.transaction_id));
    setters.extend(attrs);
    setters.push(Box::new(TextAttribute::new(ATTR_SOFTWARE, SOFTWARE.into())));
    if let Some(key) = key {
        setters.push(Box::new(MessageIntegrity::new_raw_integrity_with_provider(
            key.to_vec(),
            provider().crypto(),
        )));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters)
        .expect("attributes the core builds always fit a STUN message");
    m.raw
}

/// An ERROR-CODE attribute with our own reason phrase.
pub(crate) fn error(code: u16, reason: &str) -> Box<dyn Setter> {
    Box::new(ErrorCodeAttribute {
        code: ErrorCode(code),
        reason: reason.as_bytes().to_vec(),
    })
}

/// Decodes an XOR-encoded address value (RFC 8489 §14.2) against `request`'s transaction id.
pub(crate) fn xor_address(request: &Message, value: &[u8]) -> Option<SocketAddr> {
    if value.len() < 8 {
        return None;
    }
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2], value[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (u16::from_be_bytes([value[0], value[1]]), value.len()) {
        (0x01, 8) => {
            let mut b = [0u8; 4];
            for (i, o) in b.iter_mut().enumerate() {
                *o = value[4 + i] ^ cookie[i];
            }
            IpAddr::V4(Ipv4Addr::from(b))
        }
        (0x02, 20) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&cookie);
            mask[4..].copy_from_slice(&request.transaction_id.0);
            let mut b = [0u8; 16];
            for (i, o) in b.iter_mut().enumerate() {
                *o = value[4 + i] ^ mask[i];
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Every value of attribute `typ`, decoded as an XOR address; `None` if one is malformed.
pub(crate) fn xor_addresses(request: &Message, typ: AttrType) -> Option<Vec<SocketAddr>> {
    request
        .attributes
        .0
        .iter()
        .filter(|a| a.typ == typ)
        .map(|a| xor_address(request, &a.value))
        .collect()
}

/// The byte range of the first `typ` attribute's value inside the encoded message `raw`.
pub(crate) fn attribute_range(raw: &[u8], typ: AttrType) -> Option<Range<usize>> {
    let mut at = 20;
    while at + 4 <= raw.len() {
        let t = u16::from_be_bytes([raw[at], raw[at + 1]]);
        let len = usize::from(u16::from_be_bytes([raw[at + 2], raw[at + 3]]));
        let start = at + 4;
        if start + len > raw.len() {
            return None;
        }
        if t == typ.0 {
            return Some(start..start + len);
        }
        at = start + len.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun::attributes::ATTR_XOR_PEER_ADDRESS;
    use stun::message::{CLASS_INDICATION, METHOD_SEND, TransactionId};
    use turn_proto::proto::data::Data;
    use turn_proto::proto::peeraddr::PeerAddress;

    #[test]
    fn finds_data_and_every_peer() {
        let mut m = Message::new();
        let peers = ["192.0.2.1:1000", "[2001:db8::1]:2000"];
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
            Box::new(TransactionId::new()),
        ];
        for p in peers {
            let a: SocketAddr = p.parse().unwrap();
            setters.push(Box::new(PeerAddress {
                ip: a.ip(),
                port: a.port(),
            }));
        }
        setters.push(Box::new(Data(b"hello".to_vec())));
        m.build(&setters).unwrap();
        let mut decoded = Message::new();
        decoded.unmarshal_binary(&m.raw).unwrap();
        let got = xor_addresses(&decoded, ATTR_XOR_PEER_ADDRESS).unwrap();
        assert_eq!(got, peers.map(|p| p.parse().unwrap()).to_vec());
        let r = attribute_range(&m.raw, stun::attributes::ATTR_DATA).unwrap();
        assert_eq!(&m.raw[r], b"hello");
    }
}
