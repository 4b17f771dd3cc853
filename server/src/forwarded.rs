//! Who a request comes from when it reaches Herald through reverse proxies.
//!
//! Behind nginx, Caddy or a load balancer every connection comes from the proxy, so
//! limits keyed by address (streams per address, pushes per address without keys)
//! would count all clients as one. Proxies name the address they got each request
//! from in a header: `X-Forwarded-For: client, proxy1, proxy2` (each proxy appends the
//! address it was reached from) or `Forwarded: for=client, for=proxy1` (RFC 7239).
//!
//! Such a header is believed only from a peer listed as a trusted proxy, and only as
//! far as it was written by trusted proxies: walking the hops from the right (the
//! newest, written by the proxy that connected to Herald), the client is the first
//! hop that is not itself a trusted proxy. Whatever a client writes into the header
//! itself stays to the left of that hop and is never believed. A hop that is not an
//! address (`unknown`, an obfuscated `_name`) ends the walk: the client is then the
//! trusted proxy that reported it.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Which header the trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`, Caddy, HAProxy,
    /// cloud load balancers).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// `Forwarded` (RFC 7239).
    #[value(name = "forwarded")]
    Forwarded,
}

/// The proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Peers in `networks` are proxies that write `header`.
    pub fn new(networks: Vec<IpNet>, header: ForwardedHeader) -> Self {
        Self { networks, header }
    }

    /// The address of the client a request from `peer` with `headers` comes from.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in self.hops(headers).into_iter().rev() {
            match hop {
                Some(address) => client = address,
                None => return client,
            }
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks.iter().any(|network| network.contains(&address))
    }

    /// The hops the header lists, oldest first, in every line of it (a proxy may
    /// add a line instead of extending the last); `None` for a hop that is not an
    /// address.
    fn hops(&self, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        let mut hops = Vec::new();
        for line in headers.get_all(name) {
            let Ok(line) = line.to_str() else {
                hops.push(None);
                continue;
            };
            for element in line.split(',') {
                hops.push(match self.header {
                    ForwardedHeader::XForwardedFor => node_address(element),
                    ForwardedHeader::Forwarded => forwarded_for(element),
                });
            }
        }
        hops
    }
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http;by=…`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then(|| node_address(value)).flatten()
    })
}

/// An address as proxies write it: `192.0.2.60`, `192.0.2.60:4711`, `2001:db8::1`,
/// `[2001:db8::1]:4711`, any of them quoted (RFC 7239 §6).
fn node_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(bracketed) = text.strip_prefix('[') {
        let (address, _port) = bracketed.split_once(']')?;
        return address.parse().ok();
    }
    IpAddr::from_str(text).ok().or_else(|| {
        let (address, port) = text.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(networks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(networks.iter().map(|n| n.parse().unwrap()).collect(), header)
    }

    fn headers(name: &'static str, lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(name, HeaderValue::from_static(line));
        }
        headers
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let spoofed = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(trusted.client_address(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_address(ip("10.0.0.1"), &spoofed), ip("10.0.0.1"));
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let trusted = proxies(&["10.0.0.0/8", "::1/128"], ForwardedHeader::XForwardedFor);
        // A client that wrote its own header: the proxy appended the real address.
        let chain = headers("x-forwarded-for", &["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(trusted.client_address(ip("10.0.0.2"), &chain), ip("198.51.100.7"));
        let only_proxies = headers("x-forwarded-for", &["10.9.9.9"]);
        assert_eq!(trusted.client_address(ip("::1"), &only_proxies), ip("10.9.9.9"));
        assert_eq!(trusted.client_address(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
        let unknown = headers("x-forwarded-for", &["198.51.100.7, unknown"]);
        assert_eq!(trusted.client_address(ip("10.0.0.2"), &unknown), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_elements_give_their_for() {
        let trusted = proxies(&["127.0.0.0/8"], ForwardedHeader::Forwarded);
        let chain = headers(
            "forwarded",
            &[r#"for="[2001:db8:cafe::17]:4711";proto=https, For=192.0.2.43:47011;by=127.0.0.1"#],
        );
        assert_eq!(trusted.client_address(ip("127.0.0.1"), &chain), ip("192.0.2.43"));
        let first = headers("forwarded", &[r#"proto=https;for="[2001:db8:cafe::17]:4711""#]);
        assert_eq!(trusted.client_address(ip("127.0.0.1"), &first), ip("2001:db8:cafe::17"));
        // The other header is not the one these proxies write: not believed.
        let other = headers("x-forwarded-for", &["192.0.2.1"]);
        assert_eq!(trusted.client_address(ip("127.0.0.1"), &other), ip("127.0.0.1"));
    }

    #[test]
    fn addresses_are_read_as_proxies_write_them() {
        for (text, expected) in [
            ("192.0.2.60", "192.0.2.60"),
            (" 192.0.2.60:4711 ", "192.0.2.60"),
            ("\"192.0.2.60\"", "192.0.2.60"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
        ] {
            assert_eq!(node_address(text), Some(ip(expected)), "{text}");
        }
        for text in ["unknown", "_hidden", "", "1.2.3.4:port", "[::1"] {
            assert_eq!(node_address(text), None, "{text}");
        }
    }

    #[test]
    fn a_mapped_ipv4_peer_is_matched_as_ipv4() {
        let trusted = proxies(&["127.0.0.1/32"], ForwardedHeader::XForwardedFor);
        let chain = headers("x-forwarded-for", &["198.51.100.7"]);
        assert_eq!(trusted.client_address(ip("::ffff:127.0.0.1"), &chain), ip("198.51.100.7"));
    }
}
