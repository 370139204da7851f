//! The source a connection, a stream or a body counts against: one IPv4 address, or one IPv6
//! /64.

use std::net::{IpAddr, Ipv6Addr};

/// The source a request came from, as the server counts it: handed to the router as a request
/// extension by the server under [`Webhook::serve`](crate::Webhook::serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Source(pub(crate) IpAddr);

impl Source {
    /// The source of `ip`: an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 /64 (a host
    /// is given a whole /64, so counting single addresses would cap nothing). IPv4 counts by
    /// address, not by /24: every loopback client, and the many senders behind one NAT that
    /// share a /24, would otherwise share one cap.
    pub(crate) fn of(ip: IpAddr) -> Self {
        Self(match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut segments = v6.segments();
                    segments[4..].fill(0);
                    IpAddr::V6(Ipv6Addr::from(segments))
                }
            },
            v4 => v4,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Source;
    use std::net::IpAddr;

    #[test]
    fn sources_count_by_ipv4_address_and_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let normalize = |i| Source::of(i).0;
        assert_eq!(normalize(ip("127.0.0.2")), ip("127.0.0.2"));
        assert_eq!(normalize(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(
            normalize(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            normalize(ip("2001:db8:1:2::1")),
            normalize(ip("2001:db8:1:2::2"))
        );
        assert_ne!(
            normalize(ip("2001:db8:1:2::1")),
            normalize(ip("2001:db8:1:3::1"))
        );
        assert_ne!(normalize(ip("127.0.0.2")), normalize(ip("127.0.0.3")));
    }
}
