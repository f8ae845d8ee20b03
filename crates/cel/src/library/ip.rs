//! The IP library (upstream `library/ip.go`): `ip()`, `isIP`, `ip.isCanonical`, `string()`,
//! and `family`, `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`,
//! `isLinkLocalUnicast`, `isGlobalUnicast` on IPs. Parsing and printing are Go's
//! `net/netip` (what upstream uses), so errors and canonical forms are upstream's; like
//! upstream, IPv4-mapped IPv6 addresses and zones are refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cel_rust::common::types::{CelBool, CelInt, CelString, STRING_TYPE, Type};
use cel_rust::common::value::CowVal;
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::{charge_str, library_val, nth, str_arg};

pub(super) static IP_TYPE: Type = Type::new_unspecified_type("net.IP");

/// An IP address (never IPv4-mapped IPv6, never with a zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ip(pub(super) IpAddr);

library_val!(Ip, IP_TYPE);

/// Go's `netip.ParseAddr` error: `ParseAddr("x"): msg (at "rest")`.
fn addr_error(input: &str, msg: &str, at: &str) -> String {
    if at.is_empty() {
        format!("ParseAddr({input:?}): {msg}")
    } else {
        format!("ParseAddr({input:?}): {msg} (at {at:?})")
    }
}

/// Go's `netip.ParseAddr`: the address and its zone (empty if none).
pub(super) fn go_parse_addr(s: &str) -> Result<(IpAddr, &str), String> {
    for b in s.bytes() {
        match b {
            b'.' => return parse_v4_fields(s, s).map(|f| (IpAddr::V4(Ipv4Addr::from(f)), "")),
            b':' => return parse_v6(s),
            b'%' => return Err(addr_error(s, "missing IPv6 address", "")),
            _ => {}
        }
    }
    Err(addr_error(s, "unable to parse IP", ""))
}

/// Go's `parseIPv4Fields` on `s`, a suffix of `input` (which errors quote).
fn parse_v4_fields(input: &str, s: &str) -> Result<[u8; 4], String> {
    let b = s.as_bytes();
    let mut fields = [0u8; 4];
    let (mut val, mut pos, mut digits) = (0u32, 0usize, 0);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && val == 0 {
                    return Err(addr_error(
                        input,
                        "IPv4 field has octet with leading zero",
                        "",
                    ));
                }
                val = val * 10 + u32::from(c - b'0');
                digits += 1;
                if val > 255 {
                    return Err(addr_error(input, "IPv4 field has value >255", ""));
                }
            }
            b'.' => {
                if i == 0 || i == b.len() - 1 || b[i - 1] == b'.' {
                    let msg = "IPv4 field must have at least one digit";
                    return Err(addr_error(input, msg, &s[i..]));
                }
                if pos == 3 {
                    return Err(addr_error(input, "IPv4 address too long", ""));
                }
                fields[pos] = val as u8;
                pos += 1;
                val = 0;
                digits = 0;
            }
            _ => return Err(addr_error(input, "unexpected character", &s[i..])),
        }
    }
    if pos < 3 {
        return Err(addr_error(input, "IPv4 address too short", ""));
    }
    fields[3] = val as u8;
    Ok(fields)
}

/// Go's `parseIPv6`.
fn parse_v6(input: &str) -> Result<(IpAddr, &str), String> {
    let (mut s, zone) = match input.split_once('%') {
        Some((_, "")) => {
            return Err(addr_error(input, "zone must be a non-empty string", ""));
        }
        Some((a, z)) => (a, z),
        None => (input, ""),
    };
    let err = |msg: &str, at: &str| Err(addr_error(input, msg, at));
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if let Some(rest) = s.strip_prefix("::") {
        ellipsis = Some(0);
        s = rest;
        if s.is_empty() {
            return Ok((IpAddr::V6(Ipv6Addr::UNSPECIFIED), zone));
        }
    }
    let mut i = 0;
    while i < 16 {
        let b = s.as_bytes();
        let mut off = 0;
        let mut acc = 0u32;
        while off < b.len() {
            let Some(d) = (b[off] as char).to_digit(16) else {
                break;
            };
            acc = (acc << 4) + d;
            if off > 3 {
                return err("each group must have 4 or less digits", s);
            }
            if acc > 0xffff {
                return err("IPv6 field has value >=2^16", s);
            }
            off += 1;
        }
        if off == 0 {
            return err("each colon-separated field must have at least one digit", s);
        }
        if b.get(off) == Some(&b'.') {
            if ellipsis.is_none() && i != 12 {
                let msg = "embedded IPv4 address must replace the final 2 fields of the address";
                return err(msg, s);
            }
            if i + 4 > 16 {
                let msg = "too many hex fields to fit an embedded IPv4 at the end of the address";
                return err(msg, s);
            }
            ip[i..i + 4].copy_from_slice(&parse_v4_fields(input, s)?);
            s = "";
            i += 4;
            break;
        }
        ip[i] = (acc >> 8) as u8;
        ip[i + 1] = acc as u8;
        i += 2;
        s = &s[off..];
        if s.is_empty() {
            break;
        }
        if !s.starts_with(':') {
            return err("unexpected character, want colon", s);
        } else if s.len() == 1 {
            return err("colon must be followed by more characters", s);
        }
        s = &s[1..];
        if s.starts_with(':') {
            if ellipsis.is_some() {
                return err("multiple :: in address", s);
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return err("trailing garbage after address", s);
    }
    if i < 16 {
        let Some(e) = ellipsis else {
            return err("address string too short", "");
        };
        let n = 16 - i;
        ip.copy_within(e..i, e + n);
        ip[e..e + n].fill(0);
    } else if ellipsis.is_some() {
        return err("the :: must expand to at least one field of zeros", s);
    }
    Ok((IpAddr::V6(Ipv6Addr::from(ip)), zone))
}

/// Whether `a` is an IPv4-mapped IPv6 address (`::ffff:0:0/96`), Go's `Is4In6`.
pub(super) fn is_4in6(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Upstream's `parseIPAddr`: Go's parser, refusing zones and IPv4-mapped addresses.
pub(crate) fn parse(raw: &str) -> Result<Ip, String> {
    let (addr, zone) = go_parse_addr(raw).map_err(|e| {
        format!("IP Address {raw:?} parse error during conversion from string: {e}")
    })?;
    if !zone.is_empty() {
        return Err(format!("IP address {raw:?} with zone value is not allowed"));
    }
    if is_4in6(&addr) {
        return Err(format!("IPv4-mapped IPv6 address {raw:?} is not allowed"));
    }
    Ok(Ip(addr))
}

/// Go's `netip.Addr.String`: dotted IPv4; IPv6 in lower-case hex with the first longest
/// run of two or more zero groups as `::` (RFC 5952).
pub(super) fn to_go_string(a: &IpAddr) -> String {
    let v6 = match a {
        IpAddr::V4(v4) => return v4.to_string(),
        IpAddr::V6(v6) => v6.segments(),
    };
    let (mut start, mut end) = (8, 8);
    let mut i = 0;
    while i < 8 {
        let mut j = i;
        while j < 8 && v6[j] == 0 {
            j += 1;
        }
        if j - i >= 2 && j - i > end - start {
            (start, end) = (i, j);
        }
        i = j.max(i + 1);
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if i == start {
            out.push_str("::");
            i = end;
            continue;
        }
        if i > 0 && !out.ends_with("::") {
            out.push(':');
        }
        out.push_str(&format!("{:x}", v6[i]));
        i += 1;
    }
    out
}

impl Ip {
    fn is_loopback(&self) -> bool {
        self.0.is_loopback()
    }

    fn is_multicast(&self) -> bool {
        self.0.is_multicast()
    }

    fn is_link_local_multicast(&self) -> bool {
        match self.0 {
            IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
            IpAddr::V6(a) => a.segments()[0] & 0xff0f == 0xff02,
        }
    }

    fn is_link_local_unicast(&self) -> bool {
        match self.0 {
            IpAddr::V4(a) => a.is_link_local(),
            IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
        }
    }

    /// Go's `IsGlobalUnicast` (private and ULA addresses count, as in package net).
    fn is_global_unicast(&self) -> bool {
        if self.0 == Ipv4Addr::BROADCAST || self.0.is_unspecified() {
            return false;
        }
        !self.is_loopback() && !self.is_multicast() && !self.is_link_local_unicast()
    }
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload("ip", "string_to_ip", vec![STRING_TYPE], to_ip)?;
    env.add_overload("isIP", "is_ip", vec![STRING_TYPE], is_ip)?;
    env.add_overload(
        "ip.isCanonical",
        "ip_is_canonical",
        vec![STRING_TYPE],
        is_canonical,
    )?;
    env.add_overload(
        "string",
        "ip_to_string",
        vec![IP_TYPE.to_owned()],
        to_string,
    )?;
    let members: [(&str, &str, cel_rust::common::functions::Function); 6] = [
        ("family", "ip_family", family),
        ("isUnspecified", "ip_is_unspecified", is_unspecified),
        ("isLoopback", "ip_is_loopback", is_loopback),
        (
            "isLinkLocalMulticast",
            "ip_is_link_local_multicast",
            is_link_local_multicast,
        ),
        (
            "isLinkLocalUnicast",
            "ip_is_link_local_unicast",
            is_link_local_unicast,
        ),
        ("isGlobalUnicast", "ip_is_global_unicast", is_global_unicast),
    ];
    for (name, id, f) in members {
        env.add_member_overload(name, id, IP_TYPE.to_owned(), vec![], f)?;
    }
    Ok(())
}

/// The string argument of `function`, parsed; the error is upstream's message.
fn parsed(args: &[CowVal<'_, '_>], function: &str) -> Result<(Ip, bool), ExecutionError> {
    let s = str_arg(function, nth(args, 0)?.as_ref())?;
    charge_str(s);
    let ip = parse(s).map_err(|e| ExecutionError::function_error(function, e))?;
    Ok((ip, to_go_string(&ip.0) == s))
}

fn to_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(parsed(&args, "ip")?.0))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("isIP", nth(&args, 0)?.as_ref())?;
    charge_str(s);
    Ok(CowVal::owned(CelBool::from(parse(s).is_ok())))
}

fn is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(CelBool::from(
        parsed(&args, "ip.isCanonical")?.1,
    )))
}

pub(super) fn ip_arg(
    args: &[CowVal<'_, '_>],
    i: usize,
    function: &str,
) -> Result<Ip, ExecutionError> {
    nth(args, i)?
        .downcast_ref::<Ip>()
        .copied()
        .ok_or_else(|| ExecutionError::function_error(function, "expected an IP"))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ip = ip_arg(&args, 0, "string")?;
    Ok(CowVal::owned(CelString::from(to_go_string(&ip.0))))
}

fn family<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let f = match ip_arg(&args, 0, "family")?.0 {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    };
    Ok(CowVal::owned(CelInt::from(f)))
}

fn predicate<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    function: &str,
    test: fn(&Ip) -> bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ip = ip_arg(&args, 0, function)?;
    Ok(CowVal::owned(CelBool::from(test(&ip))))
}

fn is_unspecified<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate(args, "isUnspecified", |ip| ip.0.is_unspecified())
}

fn is_loopback<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate(args, "isLoopback", Ip::is_loopback)
}

fn is_link_local_multicast<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate(args, "isLinkLocalMulticast", Ip::is_link_local_multicast)
}

fn is_link_local_unicast<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate(args, "isLinkLocalUnicast", Ip::is_link_local_unicast)
}

fn is_global_unicast<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    predicate(args, "isGlobalUnicast", Ip::is_global_unicast)
}
