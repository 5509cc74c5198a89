//! TURN requests (pure): long-term-credential authentication with stateless nonces
//! (RFC 8489 §9.2), Allocate (RFC 8656 §7.2), Refresh (§7.3), CreatePermission (§9.2),
//! ChannelBind (§12.2) and plain STUN Binding (RFC 8489 §6.3).

use std::time::Duration;

use stun::attributes::{
    ATTR_CHANNEL_NUMBER, ATTR_EVEN_PORT, ATTR_LIFETIME, ATTR_MESSAGE_INTEGRITY, ATTR_NONCE,
    ATTR_REALM, ATTR_REQUESTED_ADDRESS_FAMILY, ATTR_REQUESTED_TRANSPORT, ATTR_RESERVATION_TOKEN,
    ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS,
};
use stun::integrity::MessageIntegrity;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_SUCCESS_RESPONSE, METHOD_ALLOCATE, METHOD_BINDING,
    METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_REFRESH, Message, Setter,
};
use stun::textattrs::TextAttribute;
use stun::xoraddr::XorMappedAddress;
use turn_proto::proto::lifetime::Lifetime;
use turn_proto::proto::relayaddr::RelayedAddress;

use super::allocation::{Allocation, BindError};
use super::wire::{self, error};
use super::{ClientAction, ClientId, DEFAULT_LIFETIME, Now, PendingAllocation, TurnCore};
use crate::credentials::{hmac_sha1, long_term_key, rest_password, username_expiry, username_user};
use crate::stats::TurnStats;

/// A nonce is good for this long; then the client gets 438 Stale Nonce (RFC 8489 §9.2.4).
pub const NONCE_LIFETIME: u64 = 600;

/// An authenticated request's identity.
pub(super) struct Auth {
    username: String,
    user: String,
    key: Vec<u8>,
}

/// An Allocate accepted but not yet given its relay socket.
pub(super) struct Pending {
    pub(super) id: u64,
    pub(super) user: String,
    username: String,
    key: Vec<u8>,
    request: Message,
    lifetime: Duration,
}

impl TurnCore {
    pub(super) fn request(&mut self, client: ClientId, mut m: Message, now: Now) -> ClientAction {
        let method = m.typ.method;
        if method == METHOD_BINDING {
            if let Some(reply) = wire::unknown_attributes(&m, None) {
                return ClientAction::Reply(reply);
            }
            let mapped = XorMappedAddress {
                ip: client.addr.ip(),
                port: client.addr.port(),
            };
            return ClientAction::Reply(wire::reply(
                &m,
                METHOD_BINDING,
                CLASS_SUCCESS_RESPONSE,
                vec![Box::new(mapped)],
                None,
            ));
        }
        if method == METHOD_ALLOCATE {
            // A retransmitted Allocate gets the same answer (RFC 8656 §7.2).
            if let Some(a) = self.allocations.get(&client)
                && a.allocate_txid == m.transaction_id
            {
                return ClientAction::Reply(a.allocate_reply.clone());
            }
            if self.pending.contains_key(&client) {
                return ClientAction::None;
            }
        }
        let known = [
            METHOD_ALLOCATE,
            METHOD_REFRESH,
            METHOD_CREATE_PERMISSION,
            METHOD_CHANNEL_BIND,
        ];
        if !known.contains(&method) {
            return self.fail(&m, 400, "Bad Request: unknown method", None);
        }
        let auth = match self.authenticate(client, &mut m, now) {
            Ok(auth) => auth,
            Err(reply) => return ClientAction::Reply(reply),
        };
        // Checked once the request is authenticated (RFC 8489 §6.3.1), so the answer is signed.
        if let Some(reply) = wire::unknown_attributes(&m, Some(&auth.key)) {
            return ClientAction::Reply(reply);
        }
        if method == METHOD_ALLOCATE {
            return self.allocate(client, m, auth);
        }
        let Some(a) = self.allocations.get(&client) else {
            return self.fail(&m, 437, "Allocation Mismatch", Some(&auth.key));
        };
        if a.username != auth.username {
            return self.fail(&m, 441, "Wrong Credentials", Some(&auth.key));
        }
        match method {
            METHOD_REFRESH => self.refresh(client, &m, &auth, now),
            METHOD_CREATE_PERMISSION => self.create_permission(client, &m, &auth, now),
            _ => self.channel_bind(client, &m, &auth, now),
        }
    }

    /// RFC 8489 §9.2.4, in its order: no MESSAGE-INTEGRITY -> 401 with REALM and NONCE; missing
    /// USERNAME/REALM/NONCE -> 400; bad or old NONCE -> 438; unknown or expired username or a
    /// wrong MESSAGE-INTEGRITY -> 401.
    fn authenticate(
        &mut self,
        client: ClientId,
        m: &mut Message,
        now: Now,
    ) -> Result<Auth, Vec<u8>> {
        let challenge = |core: &Self, m: &Message, code: u16, reason: &str| {
            let attrs: Vec<Box<dyn Setter>> = vec![
                error(code, reason),
                Box::new(TextAttribute::new(ATTR_REALM, core.config.realm.clone())),
                Box::new(TextAttribute::new(ATTR_NONCE, core.nonce(client, now.unix))),
            ];
            wire::reply(m, m.typ.method, CLASS_ERROR_RESPONSE, attrs, None)
        };
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            return Err(challenge(self, m, 401, "Unauthorized"));
        }
        let text = |attr| TextAttribute::get_from_as(m, attr).map(|t| t.text).ok();
        let (Some(username), Some(realm), Some(nonce)) =
            (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE))
        else {
            return Err(wire::reply(
                m,
                m.typ.method,
                CLASS_ERROR_RESPONSE,
                vec![error(
                    400,
                    "Bad Request: USERNAME, REALM and NONCE are required",
                )],
                None,
            ));
        };
        if !self.nonce_valid(&nonce, client, now.unix) {
            return Err(challenge(self, m, 438, "Stale Nonce"));
        }
        let fresh = username_expiry(&username).is_some_and(|e| e >= now.unix);
        let key = long_term_key(
            &username,
            &realm,
            &rest_password(&self.config.secret, &username),
        );
        let verified = realm == self.config.realm
            && fresh
            && MessageIntegrity::check(m, &key, crate::credentials::provider().crypto()).is_ok();
        if !verified {
            TurnStats::add(&self.stats.auth_failures, 1);
            let reason = if fresh {
                "Unauthorized: wrong credentials"
            } else {
                "Unauthorized: expired or malformed username"
            };
            return Err(challenge(self, m, 401, reason));
        }
        let user = username_user(&username).to_owned();
        Ok(Auth {
            username,
            user,
            key,
        })
    }

    /// A stateless nonce: issue time and a MAC over it and the client's IP.
    fn nonce(&self, client: ClientId, unix: u64) -> String {
        format!("{unix:x}-{}", self.nonce_mac(client, unix))
    }

    fn nonce_mac(&self, client: ClientId, unix: u64) -> String {
        let ip = match client.addr.ip() {
            std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(v6) => v6.octets(),
        };
        hex::encode(&hmac_sha1(&self.config.nonce_key, &[&unix.to_be_bytes(), &ip])[..10])
    }

    fn nonce_valid(&self, nonce: &str, client: ClientId, unix: u64) -> bool {
        let Some((stamp, mac)) = nonce.split_once('-') else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        issued <= unix
            && unix - issued <= NONCE_LIFETIME
            && stun::crypto::constant_time_eq(
                mac.as_bytes(),
                self.nonce_mac(client, issued).as_bytes(),
            )
    }

    /// The lifetime a request asks for, per RFC 8656 §7.2/§7.3: zero stays zero; otherwise
    /// the requested value capped at the maximum, and never below the default.
    fn desired_lifetime(&self, m: &Message) -> Duration {
        let requested =
            m.get(ATTR_LIFETIME).ok().filter(|v| v.len() == 4).map(|v| {
                Duration::from_secs(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])))
            });
        match requested {
            Some(d) if d.is_zero() => Duration::ZERO,
            Some(d) => d.min(self.config.max_lifetime).max(DEFAULT_LIFETIME),
            None => DEFAULT_LIFETIME.min(self.config.max_lifetime),
        }
    }

    fn allocate(&mut self, client: ClientId, m: Message, auth: Auth) -> ClientAction {
        let key = Some(auth.key.as_slice());
        if self.allocations.contains_key(&client) {
            return self.fail(
                &m,
                437,
                "Allocation Mismatch: this 5-tuple has an allocation",
                key,
            );
        }
        match m.get(ATTR_REQUESTED_TRANSPORT) {
            Err(_) => {
                return self.fail(&m, 400, "Bad Request: REQUESTED-TRANSPORT is required", key);
            }
            Ok(v) if v.first() != Some(&17) => {
                return self.fail(&m, 442, "Unsupported Transport Protocol: UDP only", key);
            }
            Ok(_) => {}
        }
        if m.contains(ATTR_RESERVATION_TOKEN) {
            return self.fail(&m, 508, "Insufficient Capacity: no reservations", key);
        }
        if let Ok(v) = m.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
            let wants_v6 = v.first() == Some(&0x02);
            if wants_v6 != self.config.relay_ipv6 {
                return self.fail(&m, 440, "Address Family not Supported", key);
            }
        }
        let per_user = self.users.get(&auth.user).copied().unwrap_or(0);
        let total = self.allocations.len() + self.pending.len();
        if per_user >= self.config.user_quota || total >= self.config.total_quota {
            TurnStats::add(&self.stats.quota_rejections, 1);
            return self.fail(&m, 486, "Allocation Quota Reached", key);
        }
        let id = self.next_id;
        self.next_id += 1;
        *self.users.entry(auth.user.clone()).or_default() += 1;
        let even_port = m.contains(ATTR_EVEN_PORT);
        let lifetime = self.desired_lifetime(&m);
        self.pending.insert(
            client,
            Pending {
                id,
                user: auth.user,
                username: auth.username,
                key: auth.key,
                request: m,
                lifetime,
            },
        );
        ClientAction::Allocate(PendingAllocation {
            client,
            alloc: id,
            even_port,
        })
    }

    /// Completes an Allocate once the shell has bound `relay` (advertised address), or answers
    /// 508 Insufficient Capacity when it could not. Returns the response for the client.
    pub fn finish_allocate(
        &mut self,
        pending: &PendingAllocation,
        relay: Option<std::net::SocketAddr>,
        now: Now,
    ) -> Option<Vec<u8>> {
        let p = self
            .pending
            .remove(&pending.client)
            .filter(|p| p.id == pending.alloc)?;
        let Some(relay) = relay else {
            self.release_user(&p.user);
            let reply = wire::reply(
                &p.request,
                METHOD_ALLOCATE,
                CLASS_ERROR_RESPONSE,
                vec![error(508, "Insufficient Capacity: no relay port free")],
                Some(&p.key),
            );
            return Some(reply);
        };
        let lifetime = if p.lifetime.is_zero() {
            DEFAULT_LIFETIME
        } else {
            p.lifetime
        };
        let attrs: Vec<Box<dyn Setter>> = vec![
            Box::new(RelayedAddress {
                ip: relay.ip(),
                port: relay.port(),
            }),
            Box::new(Lifetime(lifetime)),
            Box::new(XorMappedAddress {
                ip: pending.client.addr.ip(),
                port: pending.client.addr.port(),
            }),
        ];
        let reply = wire::reply(
            &p.request,
            METHOD_ALLOCATE,
            CLASS_SUCCESS_RESPONSE,
            attrs,
            Some(&p.key),
        );
        let mut a = Allocation::new(
            p.id,
            pending.client,
            p.username,
            p.user,
            now.mono + lifetime,
            p.request.transaction_id,
        );
        a.allocate_reply = reply.clone();
        self.by_id.insert(p.id, pending.client);
        self.allocations.insert(pending.client, a);
        TurnStats::add(&self.stats.total_allocations, 1);
        TurnStats::add(&self.stats.active_allocations, 1);
        Some(reply)
    }

    fn refresh(&mut self, client: ClientId, m: &Message, auth: &Auth, now: Now) -> ClientAction {
        let lifetime = self.desired_lifetime(m);
        let reply = wire::reply(
            m,
            METHOD_REFRESH,
            CLASS_SUCCESS_RESPONSE,
            vec![Box::new(Lifetime(lifetime))],
            Some(&auth.key),
        );
        if lifetime.is_zero() {
            return match self.remove(client) {
                Some(alloc) => ClientAction::Release { alloc, reply },
                None => ClientAction::Reply(reply),
            };
        }
        if let Some(a) = self.allocations.get_mut(&client) {
            a.expires = now.mono + lifetime;
        }
        ClientAction::Reply(reply)
    }

    /// Peers named in a request, checked against the relay's family (443) and the peer
    /// policy (403, RFC 8656 §9.2 / §21).
    fn peers(&self, m: &Message, key: &[u8]) -> Result<Vec<std::net::SocketAddr>, ClientAction> {
        let peers = match wire::xor_addresses(m, ATTR_XOR_PEER_ADDRESS) {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(self.fail(
                    m,
                    400,
                    "Bad Request: XOR-PEER-ADDRESS is required",
                    Some(key),
                ));
            }
        };
        if peers.iter().any(|p| p.is_ipv6() != self.config.relay_ipv6) {
            return Err(self.fail(m, 443, "Peer Address Family Mismatch", Some(key)));
        }
        if peers.iter().any(|p| !self.config.policy.allows(*p)) {
            TurnStats::add(&self.stats.forbidden_peers, 1);
            return Err(self.fail(
                m,
                403,
                "Forbidden: this server does not relay to that peer",
                Some(key),
            ));
        }
        Ok(peers)
    }

    fn create_permission(
        &mut self,
        client: ClientId,
        m: &Message,
        auth: &Auth,
        now: Now,
    ) -> ClientAction {
        let peers = match self.peers(m, &auth.key) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let a = self
            .allocations
            .get_mut(&client)
            .expect("checked by the caller");
        for peer in peers {
            if !a.permit(peer.ip(), now.mono) {
                return self.fail(
                    m,
                    508,
                    "Insufficient Capacity: too many permissions",
                    Some(&auth.key),
                );
            }
        }
        ClientAction::Reply(wire::reply(
            m,
            METHOD_CREATE_PERMISSION,
            CLASS_SUCCESS_RESPONSE,
            vec![],
            Some(&auth.key),
        ))
    }

    fn channel_bind(
        &mut self,
        client: ClientId,
        m: &Message,
        auth: &Auth,
        now: Now,
    ) -> ClientAction {
        let number = match m.get(ATTR_CHANNEL_NUMBER) {
            Ok(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
            _ => {
                return self.fail(
                    m,
                    400,
                    "Bad Request: CHANNEL-NUMBER is required",
                    Some(&auth.key),
                );
            }
        };
        let peer = match self.peers(m, &auth.key) {
            Ok(p) if p.len() == 1 => p[0],
            Ok(_) => {
                return self.fail(m, 400, "Bad Request: one XOR-PEER-ADDRESS", Some(&auth.key));
            }
            Err(reply) => return reply,
        };
        let a = self
            .allocations
            .get_mut(&client)
            .expect("checked by the caller");
        let checked = a.check_bind(number, peer, now.mono);
        let ok = checked.is_ok() && a.permit(peer.ip(), now.mono);
        if ok {
            a.bind(number, peer, now.mono);
            return ClientAction::Reply(wire::reply(
                m,
                METHOD_CHANNEL_BIND,
                CLASS_SUCCESS_RESPONSE,
                vec![],
                Some(&auth.key),
            ));
        }
        let reason = match checked {
            Err(BindError::BadNumber) => "Bad Request: channel numbers are 0x4000-0x7FFE",
            Err(BindError::Conflict) => "Bad Request: channel or peer already bound otherwise",
            Err(BindError::TooMany) | Ok(()) => "Bad Request: too many channels or permissions",
        };
        self.fail(m, 400, reason, Some(&auth.key))
    }

    /// An error response to `m`, signed when the request was authenticated.
    pub(super) fn fail(
        &self,
        m: &Message,
        code: u16,
        reason: &str,
        key: Option<&[u8]>,
    ) -> ClientAction {
        ClientAction::Reply(wire::reply(
            m,
            m.typ.method,
            CLASS_ERROR_RESPONSE,
            vec![error(code, reason)],
            key,
        ))
    }
}
