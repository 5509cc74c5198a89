//! STUN/TURN wire helpers for the core (pure): building responses with MESSAGE-INTEGRITY and
//! FINGERPRINT (RFC 8489 §14.5, §14.7), decoding every XOR-PEER-ADDRESS (RFC 8656 §18.3) and
//! finding the DATA attribute inside a Send indication without copying it (RFC 8656 §11.4), and
//! the 420 Unknown Attribute answer (RFC 8489 §6.3.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use stun::attributes::{
    ATTR_CHANNEL_NUMBER, ATTR_DATA, ATTR_ERROR_CODE, ATTR_EVEN_PORT, ATTR_LIFETIME,
    ATTR_MAPPED_ADDRESS, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_PADDING, ATTR_PRIORITY,
    ATTR_REALM, ATTR_REQUESTED_ADDRESS_FAMILY, ATTR_REQUESTED_TRANSPORT, ATTR_RESERVATION_TOKEN,
    ATTR_SOFTWARE, ATTR_UNKNOWN_ATTRIBUTES, ATTR_USE_CANDIDATE, ATTR_USERNAME,
    ATTR_XOR_PEER_ADDRESS, ATTR_XOR_RELAYED_ADDRESS, ATTR_XORMAPPED_ADDRESS, AttrType,
};
use stun::error_code::{ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, MAGIC_COOKIE, Message, MessageClass, MessageType, Method, Setter,
};
use stun::textattrs::TextAttribute;
use stun::uattrs::UnknownAttributes;

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

/// The comprehension-required attributes (0x0000–0x7FFF) this server understands. Not among them:
/// DONT-FRAGMENT, since relayed datagrams are sent without the DF bit (RFC 8656 §7.2: the server
/// then treats it as unknown, and the client retries without it), and the SHA-256 integrity,
/// password-algorithm and user-hash attributes this server never offers (RFC 8489 §9.2.4).
const UNDERSTOOD: [AttrType; 20] = [
    ATTR_MAPPED_ADDRESS,
    ATTR_USERNAME,
    ATTR_MESSAGE_INTEGRITY,
    ATTR_ERROR_CODE,
    ATTR_UNKNOWN_ATTRIBUTES,
    ATTR_CHANNEL_NUMBER,
    ATTR_LIFETIME,
    ATTR_XOR_PEER_ADDRESS,
    ATTR_DATA,
    ATTR_REALM,
    ATTR_NONCE,
    ATTR_XOR_RELAYED_ADDRESS,
    ATTR_REQUESTED_ADDRESS_FAMILY,
    ATTR_EVEN_PORT,
    ATTR_REQUESTED_TRANSPORT,
    ATTR_XORMAPPED_ADDRESS,
    ATTR_RESERVATION_TOKEN,
    // ICE's connectivity-check attributes (RFC 8445 §16.1), in case a client checks against us.
    ATTR_PRIORITY,
    ATTR_USE_CANDIDATE,
    // PADDING (RFC 5780 §7.6) asks nothing of a server that does not pad its answers.
    ATTR_PADDING,
];

/// The 420 Unknown Attribute answer to `request` when it carries comprehension-required
/// attributes this server does not understand (RFC 8489 §6.3.1), listing them (§14.9).
pub(crate) fn unknown_attributes(request: &Message, key: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut unknown: Vec<AttrType> = Vec::new();
    for a in &request.attributes.0 {
        if a.typ.required() && !UNDERSTOOD.contains(&a.typ) && !unknown.contains(&a.typ) {
            unknown.push(a.typ);
        }
    }
    if unknown.is_empty() {
        return None;
    }
    Some(reply(
        request,
        request.typ.method,
        CLASS_ERROR_RESPONSE,
        vec![
            error(420, "Unknown Attribute"),
            Box::new(UnknownAttributes(unknown)),
        ],
        key,
    ))
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
