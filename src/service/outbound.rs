//! Where keyward may send what admins configure: alert webhooks and Slack
//! URLs must not reach inside the deployment (cloud metadata, the
//! database, keyward itself).
//!
//! A URL is checked when it is saved, and again at delivery: the HTTP
//! client resolves names through [`GuardedResolver`], which drops internal
//! addresses, so DNS rebinding and redirects to internal names get
//! nowhere; an IP literal, which no resolver sees, is checked on the URL
//! itself, first and after every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How long a check at save time waits for DNS before giving up on it; an
/// unresolvable name is accepted then, because delivery checks it again.
const SAVE_TIME_DNS: Duration = Duration::from_secs(2);
const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0:?} is not an http(s) URL")]
    NotHttp(String),
    #[error("{host} resolves to {addr}, an internal address (loopback, link-local, private, unspecified or multicast); set [alerts] allow_private_targets = true to allow it")]
    Internal { host: String, addr: IpAddr },
}

/// Whether internal targets are allowed: off by default; on for
/// on-premises receivers and tests with fakes on loopback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    pub allow_private_targets: bool,
}

impl OutboundPolicy {
    pub fn allow_private() -> OutboundPolicy {
        OutboundPolicy {
            allow_private_targets: true,
        }
    }

    /// `KEYWARD_ALLOW_PRIVATE_TARGETS=1` or the config file's setting.
    pub fn from_setting(allow_private_targets: bool) -> OutboundPolicy {
        OutboundPolicy { allow_private_targets }
    }

    /// The check at save time: the URL's host, resolved now.
    pub async fn check_url(&self, url: &str) -> Result<(), Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::NotHttp(url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(Refused::NotHttp(url.to_string()));
        }
        if self.allow_private_targets {
            return Ok(());
        }
        self.check_literal(&parsed)?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let bare = host.trim_matches(['[', ']']).to_string();
        let resolved = tokio::time::timeout(SAVE_TIME_DNS, tokio::net::lookup_host((bare.as_str(), port))).await;
        let internal = match resolved {
            Ok(Ok(mut addrs)) => addrs.find(|a| is_internal(a.ip())),
            _ => None,
        };
        match internal {
            Some(addr) => Err(Refused::Internal { host, addr: addr.ip() }),
            None => Ok(()),
        }
    }

    /// An IP literal in the URL, which no resolver sees.
    fn check_literal(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let addr = match url.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        if !self.allow_private_targets && is_internal(addr) {
            return Err(Refused::Internal {
                host: url.host_str().unwrap_or_default().to_string(),
                addr,
            });
        }
        Ok(())
    }

    /// The check at delivery, before the first request.
    pub fn check_before_send(&self, url: &str) -> Result<(), Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::NotHttp(url.to_string()))?;
        self.check_literal(&parsed)
    }

    /// An HTTP client for delivering to admin-set URLs: names resolve only
    /// to external addresses, redirects are re-checked, proxies from the
    /// environment are not used (they would resolve on our behalf).
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        let policy = *self;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            match policy.check_literal(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        let mut builder = reqwest::Client::builder().timeout(timeout).redirect(redirects);
        if !self.allow_private_targets {
            builder = builder.no_proxy().dns_resolver(Arc::new(GuardedResolver));
        }
        builder.build().expect("an HTTP client builds")
    }
}

/// Resolves with the system resolver and keeps only external addresses.
struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let external: Vec<SocketAddr> = found.iter().copied().filter(|a| !is_internal(a.ip())).collect();
            match (external.is_empty(), found.first()) {
                (true, Some(addr)) => {
                    Err(Box::new(Refused::Internal { host, addr: addr.ip() }) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(external.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// Loopback, link-local, private (RFC 1918, shared CGNAT space, fc00::/7),
/// unspecified, broadcast or multicast: addresses inside a deployment.
/// IPv4 embedded in IPv6 (mapped, NAT64) is judged as IPv4.
pub fn is_internal(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || a >= 240
}

fn is_internal_v6(v6: Ipv6Addr) -> bool {
    let first = v6.segments()[0];
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
}

fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0]).then(|| Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $addr:expr, $internal:expr) => {
            #[test]
            fn $name() {
                let addr: IpAddr = $addr.parse().unwrap();
                assert_eq!(is_internal(addr), $internal, "{addr}");
            }
        };
    }

    t!(loopback_v4, "127.0.0.1", true);
    t!(loopback_v4_far, "127.255.0.9", true);
    t!(cloud_metadata, "169.254.169.254", true);
    t!(rfc1918_ten, "10.1.2.3", true);
    t!(rfc1918_172, "172.20.0.1", true);
    t!(rfc1918_192, "192.168.1.1", true);
    t!(cgnat, "100.100.100.200", true);
    t!(unspecified_v4, "0.0.0.0", true);
    t!(this_network, "0.1.2.3", true);
    t!(multicast_v4, "239.1.1.1", true);
    t!(broadcast, "255.255.255.255", true);
    t!(public_v4, "140.82.112.3", false);
    t!(just_outside_172, "172.32.0.1", false);
    t!(loopback_v6, "::1", true);
    t!(unspecified_v6, "::", true);
    t!(unique_local, "fd00::1", true);
    t!(link_local_v6, "fe80::1", true);
    t!(multicast_v6, "ff02::1", true);
    t!(mapped_loopback, "::ffff:127.0.0.1", true);
    t!(mapped_metadata, "::ffff:169.254.169.254", true);
    t!(nat64_private, "64:ff9b::a00:1", true);
    t!(public_v6, "2606:4700:4700::1111", false);
    t!(mapped_public, "::ffff:140.82.112.3", false);

    #[tokio::test]
    async fn saving_refuses_internal_literals_and_names_unless_allowed() {
        let strict = OutboundPolicy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:5432/",
            "http://[::1]:8080/x",
            "http://localhost:8080/hook",
            "http://0x7f000001/",
        ] {
            assert!(matches!(strict.check_url(url).await, Err(Refused::Internal { .. })), "{url}");
        }
        assert!(matches!(strict.check_url("ftp://example.com/").await, Err(Refused::NotHttp(_))));
        assert!(OutboundPolicy::allow_private().check_url("http://127.0.0.1:5432/").await.is_ok());
    }
}
