//! Who the client is: the socket peer, or, when the peer is a proxy the
//! deployment trusts, the address that proxy saw, from `X-Forwarded-For`.
//!
//! Only trusted proxies are believed, and only for what they appended:
//! the list is read from the right and the first address that is not a
//! trusted proxy is the client. A client that sends its own
//! `X-Forwarded-For` to a trusted proxy gets its entries pushed further
//! left, where they are never reached. Rate limits, the sign-in limit and
//! the audit log all use this one answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy {0:?} is not an address or CIDR range (10.0.0.0/8, fd00::/8, 127.0.0.1)")]
pub struct BadRange(pub String);

/// CIDR ranges of proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address per entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, BadRange> {
        let mut ranges = Vec::new();
        for entry in entries {
            let text = entry.as_ref().trim();
            if text.is_empty() {
                continue;
            }
            let bad = || BadRange(text.to_string());
            let (addr, bits) = match text.split_once('/') {
                Some((addr, bits)) => (addr.parse::<IpAddr>().map_err(|_| bad())?, bits.parse::<u8>().map_err(|_| bad())?),
                None => {
                    let addr = text.parse::<IpAddr>().map_err(|_| bad())?;
                    (addr, if addr.is_ipv4() { 32 } else { 128 })
                }
            };
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(bad());
            }
            ranges.push((addr, bits));
        }
        Ok(TrustedProxies { ranges })
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.ranges.iter().any(|(net, bits)| in_range(ip, canonical(*net), *bits))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(addr) = parse_hop(hop) else {
                // A trusted proxy wrote nonsense: the nearest proxy is all we know.
                return client;
            };
            client = addr;
            if !self.contains(addr) {
                return addr;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// The resolved client address, in each request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
        extensions.get::<ClientIp>().map(|c| c.0)
    }
}

/// Middleware: works out the client once per request.
pub async fn resolve(State(proxies): State<Arc<TrustedProxies>>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = proxies.client(canonical(peer), req.headers());
        req.extensions_mut().insert(ClientIp(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append("x-forwarded-for", v.parse().unwrap());
        }
        map
    }

    macro_rules! t {
        ($name:ident, $trusted:expr, $peer:expr, $xff:expr, $expected:expr) => {
            #[test]
            fn $name() {
                let proxies = TrustedProxies::parse(&$trusted).unwrap();
                let got = proxies.client($peer.parse().unwrap(), &headers(&$xff));
                assert_eq!(got, $expected.parse::<IpAddr>().unwrap());
            }
        };
    }

    t!(
        untrusted_peer_is_the_client,
        ["10.0.0.0/8"],
        "203.0.113.9",
        ["1.1.1.1"],
        "203.0.113.9"
    );
    t!(
        no_proxies_configured_ignores_the_header,
        Vec::<&str>::new(),
        "10.0.0.2",
        ["1.1.1.1"],
        "10.0.0.2"
    );
    t!(
        trusted_peer_names_the_client,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["198.51.100.7"],
        "198.51.100.7"
    );
    t!(
        a_spoofed_left_entry_is_never_reached,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["6.6.6.6, 198.51.100.7"],
        "198.51.100.7"
    );
    t!(
        chains_of_trusted_proxies_are_walked,
        ["10.0.0.0/8", "172.16.0.0/12"],
        "10.0.0.2",
        ["198.51.100.7, 172.18.0.4"],
        "198.51.100.7"
    );
    t!(
        several_headers_are_one_list,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["6.6.6.6", "198.51.100.7"],
        "198.51.100.7"
    );
    t!(
        ports_and_brackets_are_read,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["[2001:db8::9]:443"],
        "2001:db8::9"
    );
    t!(
        garbage_stops_at_the_proxy,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["not-an-address"],
        "10.0.0.2"
    );
    t!(
        all_trusted_gives_the_leftmost,
        ["10.0.0.0/8"],
        "10.0.0.2",
        ["10.1.1.1, 10.2.2.2"],
        "10.1.1.1"
    );
    t!(
        mapped_peers_match_v4_ranges,
        ["127.0.0.1"],
        "::ffff:127.0.0.1",
        ["198.51.100.7"],
        "198.51.100.7"
    );
    t!(
        single_addresses_are_ranges_of_one,
        ["127.0.0.1"],
        "127.0.0.2",
        ["198.51.100.7"],
        "127.0.0.2"
    );

    #[test]
    fn bad_ranges_are_refused() {
        for bad in ["10.0.0.0/33", "::/129", "ten", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
        assert!(TrustedProxies::parse(&["0.0.0.0/0", "::/0"])
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
