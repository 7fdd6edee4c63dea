//! Who a request comes from: the peer of its connection or, when that peer
//! is a trusted reverse proxy, the address the proxies recorded in
//! `X-Forwarded-For`.
//!
//! Every proxy appends the address it received the request from, so the
//! header reads `client, proxy1, proxy2` and the peer is the last proxy. Only
//! the entries written by proxies we trust can be believed: the leftmost
//! entries are whatever the client sent. So the header is read from the
//! right, skipping trusted proxies, and the first address that is not one
//! is the client (nginx's `real_ip_recursive on`). A header that cannot be
//! read falls back to the peer: the peer is at least a real address, and a
//! client must not be able to choose its address by sending garbage.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses (`10.0.0.2`) and networks
    /// (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip.to_canonical()),
                    Err(_) => {
                        return Err(format!(
                            "{item:?} is neither an IP address nor a network such as \
                             10.0.0.0/8: list the reverse proxies' addresses, separated \
                             by commas"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether `ip` is one of the proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// The client address of a request, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The client of a request that came from `peer` with the
/// `X-Forwarded-For` header values `forwarded` (in the order received).
pub fn client_addr<'a>(
    peer: SocketAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut leftmost = None;
    // Rightmost header first, and rightmost entry of each.
    for value in forwarded.rev() {
        let Ok(value) = std::str::from_utf8(value) else {
            return peer;
        };
        for entry in value.rsplit(',') {
            let Some(ip) = forwarded_ip(entry.trim()) else {
                return peer;
            };
            if !trusted.contains(ip) {
                return ip;
            }
            leftmost = Some(ip);
        }
    }
    // Nothing but trusted proxies: the first of them is the client.
    leftmost.unwrap_or(peer)
}

/// One entry of `X-Forwarded-For`: an address, or an address and port as
/// some proxies write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, headers: &[&str], trusted: &str) -> String {
        let peer: SocketAddr = peer.parse().unwrap();
        let trusted = TrustedProxies::parse(trusted).unwrap();
        client_addr(peer, headers.iter().map(|h| h.as_bytes()), &trusted).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(resolve("192.0.2.7:1", &["203.0.113.1"], ""), "192.0.2.7");
        assert_eq!(
            resolve("192.0.2.7:1", &["203.0.113.1"], "10.0.0.0/8"),
            "192.0.2.7"
        );
        assert_eq!(resolve("192.0.2.7:1", &[], "10.0.0.1"), "192.0.2.7");
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client() {
        let proxy = "10.0.0.1:40000";
        assert_eq!(resolve(proxy, &["203.0.113.1"], "10.0.0.1"), "203.0.113.1");
        // The client wrote the leftmost entries itself: they are skipped.
        assert_eq!(
            resolve(proxy, &["1.1.1.1, 8.8.8.8, 203.0.113.1"], "10.0.0.1"),
            "203.0.113.1"
        );
        // Chained proxies, in one header or several.
        assert_eq!(
            resolve(proxy, &["6.6.6.6, 203.0.113.1, 10.0.0.9"], "10.0.0.0/24"),
            "203.0.113.1"
        );
        assert_eq!(
            resolve(proxy, &["6.6.6.6, 203.0.113.1", "10.0.0.9"], "10.0.0.0/24"),
            "203.0.113.1"
        );
        // No header: the proxy itself.
        assert_eq!(resolve(proxy, &[], "10.0.0.1"), "10.0.0.1");
        // Only proxies: the first one.
        assert_eq!(
            resolve(proxy, &["10.0.0.3, 10.0.0.2"], "10.0.0.0/24"),
            "10.0.0.3"
        );
        // Ports, as some proxies write them.
        assert_eq!(
            resolve(proxy, &["203.0.113.1:5555"], "10.0.0.1"),
            "203.0.113.1"
        );
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        assert_eq!(
            resolve("[fd00::1]:80", &["2001:db8::7, fd00::2"], "fd00::/8"),
            "2001:db8::7"
        );
        assert_eq!(
            resolve("[fd00::1]:80", &["[2001:db8::7]:443"], "fd00::1"),
            "2001:db8::7"
        );
        // An IPv4 peer on a dual-stack socket is the IPv4 address.
        assert_eq!(
            resolve("[::ffff:10.0.0.1]:80", &["::ffff:203.0.113.1"], "10.0.0.1"),
            "203.0.113.1"
        );
        assert_eq!(resolve("[::ffff:192.0.2.7]:80", &[], ""), "192.0.2.7");
    }

    #[test]
    fn garbage_falls_back_to_the_peer() {
        let proxy = "10.0.0.1:40000";
        for header in [
            "",
            "unknown",
            "203.0.113.1, not-an-ip",
            "203.0.113.1,,",
            "203.0.113.1 10.0.0.2",
            "999.1.1.1",
            "_hidden",
        ] {
            assert_eq!(
                resolve(proxy, &[header], "10.0.0.1"),
                "10.0.0.1",
                "{header:?}"
            );
        }
        // Garbage left of the client is the client's own business.
        assert_eq!(
            resolve(proxy, &["garbage, 203.0.113.1"], "10.0.0.1"),
            "203.0.113.1"
        );
        let peer: SocketAddr = proxy.parse().unwrap();
        let trusted = TrustedProxies::parse("10.0.0.1").unwrap();
        let invalid: &[u8] = b"203.0.113.1\xff";
        assert_eq!(
            client_addr(peer, [invalid].into_iter(), &trusted).to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn the_list_of_proxies_is_checked() {
        let parsed = TrustedProxies::parse(" 10.0.0.1, 172.16.0.0/12 ,fd00::/8,").unwrap();
        assert_eq!(parsed.to_string(), "10.0.0.1/32,172.16.0.0/12,fd00::/8");
        assert!(parsed.contains("172.20.1.1".parse().unwrap()));
        assert!(!parsed.contains("172.32.0.1".parse().unwrap()));
        // A network written with host bits is the network.
        assert_eq!(
            TrustedProxies::parse("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        let err = TrustedProxies::parse("10.0.0.1, proxy.local").unwrap_err();
        assert!(err.contains("\"proxy.local\""), "{err}");
    }
}
