//! Scenario tests of the TURN core's 420 Unknown Attribute answer (RFC 8489 §6.3.1, RFC 8656
//! §7.2): which attributes are refused, when, and that a refusal costs the client nothing.

use super::*;
use stun::uattrs::UnknownAttributes;

/// An attribute of any type, as a client that knows more than this server would send it.
struct RawAttr(u16, Vec<u8>);

impl Setter for RawAttr {
    fn add_to(&self, m: &mut Message) -> rtc_shared::error::Result<()> {
        m.add(stun::attributes::AttrType(self.0), &self.1);
        Ok(())
    }
}

fn unknown_listed(bytes: &[u8]) -> Vec<u16> {
    let mut u = UnknownAttributes(vec![]);
    u.get_from(&decode(bytes)).unwrap();
    u.0.iter().map(|t| t.0).collect()
}

#[test]
fn unknown_comprehension_required_attributes_answer_420_after_authentication() {
    let mut f = fixture(1, 10);
    let c = challenged(&mut f, "192.0.2.10:5000", "alice", 0);
    // DONT-FRAGMENT: relayed datagrams go without the DF bit, so it is refused as unknown
    // (RFC 8656 §7.2), listed once even when repeated, beside another unknown one.
    let mut attrs = allocate_request();
    attrs.push(Box::new(RawAttr(0x001A, vec![])));
    attrs.push(Box::new(RawAttr(0x7F00, vec![1, 2, 3, 4])));
    attrs.push(Box::new(RawAttr(0x001A, vec![])));
    let r = reply(
        f.core
            .handle_client(c.id, &request(METHOD_ALLOCATE, attrs, Some(&c)), f.at(0)),
    );
    assert_eq!(error_code(&r), Some(420));
    assert_eq!(unknown_listed(&r), vec![0x001A, 0x7F00]);
    let key = crate::credentials::long_term_key(&c.username, "onair", &c.password);
    MessageIntegrity::check(&mut decode(&r), &key, provider().crypto()).unwrap();
    // Without a credential the client learns of the 401 first, not of the attribute.
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RawAttr(0x001A, vec![]))];
    let r = reply(f.core.handle_client(
        udp("192.0.2.11:5000"),
        &request(METHOD_ALLOCATE, attrs, None),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(401));
    // The retry without it gets the allocation: the refusal took none of the quota of one.
    let (c, _) = allocated(&mut f, "192.0.2.10:5001", "alice");
    // A Refresh with an unknown attribute is refused and leaves the allocation as it was;
    // comprehension-optional attributes (0x8000 and up) are ignored.
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RawAttr(0x0030, vec![0; 4]))];
    let r = reply(
        f.core
            .handle_client(c.id, &request(METHOD_REFRESH, attrs, Some(&c)), f.at(1)),
    );
    assert_eq!(error_code(&r), Some(420));
    assert_eq!(unknown_listed(&r), vec![0x0030]);
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RawAttr(0xC057, vec![0; 4]))];
    let r = reply(
        f.core
            .handle_client(c.id, &request(METHOD_REFRESH, attrs, Some(&c)), f.at(2)),
    );
    assert_eq!(decode(&r).typ.class, CLASS_SUCCESS_RESPONSE);
}

#[test]
fn a_binding_request_with_an_unknown_required_attribute_gets_420() {
    let mut f = fixture(1, 10);
    let id = udp("192.0.2.10:5000");
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RawAttr(0x7F01, vec![0; 4]))];
    let r = reply(f.core.handle_client(
        id,
        &request(stun::message::METHOD_BINDING, attrs, None),
        f.at(0),
    ));
    assert_eq!(error_code(&r), Some(420));
    assert_eq!(unknown_listed(&r), vec![0x7F01]);
    let attrs: Vec<Box<dyn Setter>> = vec![Box::new(RawAttr(0xC057, vec![0; 4]))];
    let r = reply(f.core.handle_client(
        id,
        &request(stun::message::METHOD_BINDING, attrs, None),
        f.at(0),
    ));
    assert_eq!(decode(&r).typ.class, CLASS_SUCCESS_RESPONSE);
}
