//! The four NAT behaviours of the lab and the nftables rule set that makes each.
//!
//! RFC 4787 describes a NAT by its *mapping* (is the external port of an inside
//! endpoint the same towards every destination?) and its *filtering* (who outside may
//! send to that external port?):
//!
//! | kind | mapping | filtering | how |
//! |---|---|---|---|
//! | [`FullCone`](NatKind::FullCone) | endpoint-independent | endpoint-independent | `masquerade` + a dynamic map, `dnat` through it |
//! | [`AddressRestricted`](NatKind::AddressRestricted) | endpoint-independent | address-dependent | the same map, gated by a set of contacted addresses |
//! | [`PortRestricted`](NatKind::PortRestricted) | endpoint-independent | address- and port-dependent | plain `masquerade` (conntrack) |
//! | [`Symmetric`](NatKind::Symmetric) | endpoint-dependent | address- and port-dependent | `masquerade fully-random` |
//!
//! Linux's `masquerade` keeps an inside port when it is free, so the mapping of the
//! first three kinds is endpoint-independent; conntrack lets in only replies of a known
//! 5-tuple, which is the port-restricted filter. Mainline Linux has no target for the
//! two looser filters, so those kinds record each outbound mapping in a dynamic map
//! (external port → inside address and port, taken from the connection's original
//! tuple after `masquerade` chose the port) and `dnat` new inbound flows through it;
//! the address-restricted kind lets a flow in only when the inside endpoint sent to
//! that address before (a second dynamic set keyed by external port and remote
//! address). Every kind drops new inbound flows that no rule forwards, silently, as a
//! home router does (no RST or ICMP error that would end a TCP simultaneous open).

use std::fmt;

/// How a NAT router maps and filters (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatKind {
    /// Endpoint-independent mapping and filtering: once an inside endpoint sent
    /// anything, anyone may reach it at its external address.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering: hosts the inside
    /// endpoint sent to may reach it, from any port.
    AddressRestricted,
    /// Endpoint-independent mapping, address- and port-dependent filtering: only the
    /// exact remote endpoints the inside sent to may answer.
    PortRestricted,
    /// Endpoint-dependent mapping (a random external port per destination) and
    /// address- and port-dependent filtering.
    Symmetric,
}

/// Whether the external port of an inside endpoint depends on the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The same external port towards every destination.
    EndpointIndependent,
    /// A new external port for each destination.
    EndpointDependent,
}

/// Which outside endpoints may send to an existing mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtering {
    /// Anyone.
    EndpointIndependent,
    /// Any port of an address the inside endpoint sent to.
    AddressDependent,
    /// Only the exact address and port the inside endpoint sent to.
    AddressAndPortDependent,
}

impl NatKind {
    /// All four kinds, loosest first.
    pub const ALL: [NatKind; 4] = [
        NatKind::FullCone,
        NatKind::AddressRestricted,
        NatKind::PortRestricted,
        NatKind::Symmetric,
    ];

    /// A short name, as used in test names and tables (`full-cone`, ...).
    pub fn name(self) -> &'static str {
        match self {
            NatKind::FullCone => "full-cone",
            NatKind::AddressRestricted => "address-restricted",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
        }
    }

    /// Its mapping behaviour.
    pub fn mapping(self) -> Mapping {
        match self {
            NatKind::Symmetric => Mapping::EndpointDependent,
            _ => Mapping::EndpointIndependent,
        }
    }

    /// Its filtering behaviour.
    pub fn filtering(self) -> Filtering {
        match self {
            NatKind::FullCone => Filtering::EndpointIndependent,
            NatKind::AddressRestricted => Filtering::AddressDependent,
            NatKind::PortRestricted | NatKind::Symmetric => Filtering::AddressAndPortDependent,
        }
    }

    /// Whether two peers behind `self` and `other` can punch a hole without port
    /// prediction: both endpoint-independent mappings, or an endpoint-dependent one
    /// facing a NAT that lets in any port of a contacted address (the symmetric side
    /// sends from a port nobody predicted; only an address-dependent or looser filter
    /// on the far side takes it, and the far side's own mapping is known).
    pub fn punchable_with(self, other: NatKind) -> bool {
        let loose = |k: NatKind| {
            matches!(
                k.filtering(),
                Filtering::EndpointIndependent | Filtering::AddressDependent
            )
        };
        match (self.mapping(), other.mapping()) {
            (Mapping::EndpointIndependent, Mapping::EndpointIndependent) => true,
            (Mapping::EndpointDependent, Mapping::EndpointIndependent) => loose(other),
            (Mapping::EndpointIndependent, Mapping::EndpointDependent) => loose(self),
            (Mapping::EndpointDependent, Mapping::EndpointDependent) => false,
        }
    }

    /// The nftables rule set (for `nft -f`) of a router whose outside interface is
    /// `wan`: one table, `weft_nat`, replacing any earlier one.
    pub fn ruleset(self, wan: &str) -> String {
        let mut rules = String::new();
        let push = |rules: &mut String, line: &str| {
            rules.push_str(line);
            rules.push('\n');
        };
        push(&mut rules, "table ip weft_nat {}");
        push(&mut rules, "delete table ip weft_nat");
        push(&mut rules, "table ip weft_nat {");
        let dynamic = matches!(self, NatKind::FullCone | NatKind::AddressRestricted);
        if dynamic {
            for proto in PROTOCOLS {
                // External port -> the inside address and port it stands for.
                push(
                    &mut rules,
                    &format!(
                        "  map {proto}_mapped {{ type inet_service : ipv4_addr . inet_service; \
                         flags dynamic,timeout; timeout {MAPPING_TIMEOUT}; }}"
                    ),
                );
                if self == NatKind::AddressRestricted {
                    // (external port, remote address) pairs the inside sent to.
                    push(
                        &mut rules,
                        &format!(
                            "  set {proto}_contacted {{ type inet_service . ipv4_addr; \
                             flags dynamic,timeout; timeout {MAPPING_TIMEOUT}; }}"
                        ),
                    );
                }
            }
            push(
                &mut rules,
                "  chain inbound { type nat hook prerouting priority dstnat; policy accept;",
            );
            for proto in PROTOCOLS {
                let gate = if self == NatKind::AddressRestricted {
                    format!("{proto} dport . ip saddr @{proto}_contacted ")
                } else {
                    String::new()
                };
                push(
                    &mut rules,
                    &format!(
                        "    iifname \"{wan}\" {gate}{proto} dport @{proto}_mapped \
                         dnat ip to {proto} dport map @{proto}_mapped"
                    ),
                );
            }
            push(&mut rules, "  }");
        }
        let masquerade = if self == NatKind::Symmetric {
            "masquerade fully-random"
        } else {
            "masquerade"
        };
        push(
            &mut rules,
            "  chain outbound { type nat hook postrouting priority srcnat; policy accept;",
        );
        push(&mut rules, &format!("    oifname \"{wan}\" {masquerade}"));
        push(&mut rules, "  }");
        if dynamic {
            // After `masquerade` (priority srcnat = 100) the packet carries its external
            // port; the connection's original tuple still names the inside endpoint.
            // Only packets of flows the inside started are recorded: replies of a flow
            // let in through the map must not make the remote an inside endpoint.
            push(
                &mut rules,
                "  chain record { type filter hook postrouting priority 200; policy accept;",
            );
            for proto in PROTOCOLS {
                let mut line = format!(
                    "    oifname \"{wan}\" ct direction original meta l4proto {proto} \
                     update @{proto}_mapped {{ {proto} sport : ct original ip saddr . ct original proto-src }}"
                );
                if self == NatKind::AddressRestricted {
                    line.push_str(&format!(
                        " update @{proto}_contacted {{ {proto} sport . ip daddr }}"
                    ));
                }
                push(&mut rules, &line);
            }
            push(&mut rules, "  }");
        }
        // New flows from outside that no rule forwarded end at the router: drop them.
        push(
            &mut rules,
            "  chain input { type filter hook input priority filter; policy accept;",
        );
        push(
            &mut rules,
            &format!("    iifname \"{wan}\" ct state new,invalid drop"),
        );
        push(&mut rules, "  }");
        push(&mut rules, "}");
        rules
    }
}

/// The protocols a NAT maps (nftables names).
const PROTOCOLS: [&str; 2] = ["udp", "tcp"];

/// How long a recorded mapping lives without traffic (refreshed by each packet out).
const MAPPING_TIMEOUT: &str = "120s";

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_punchable_pairs_are_those_of_the_issue() {
        use NatKind::*;
        // Symmetric facing port-restricted or symmetric is the only unpunchable case.
        for a in NatKind::ALL {
            for b in NatKind::ALL {
                let expected = !matches!(
                    (a, b),
                    (Symmetric, PortRestricted | Symmetric) | (PortRestricted, Symmetric)
                );
                assert_eq!(a.punchable_with(b), expected, "{a} x {b}");
            }
        }
    }

    #[test]
    fn only_the_cone_kinds_with_loose_filters_keep_a_dynamic_map() {
        for kind in NatKind::ALL {
            let rules = kind.ruleset("wan");
            let mapped = rules.contains("udp_mapped") && rules.contains("tcp_mapped");
            assert_eq!(
                mapped,
                matches!(kind, NatKind::FullCone | NatKind::AddressRestricted),
                "{kind}:\n{rules}"
            );
            assert_eq!(
                rules.contains("_contacted"),
                kind == NatKind::AddressRestricted,
                "{kind}"
            );
            assert_eq!(
                rules.contains("fully-random"),
                kind == NatKind::Symmetric,
                "{kind}"
            );
            assert!(rules.contains("iifname \"wan\" ct state new,invalid drop"));
        }
    }
}
