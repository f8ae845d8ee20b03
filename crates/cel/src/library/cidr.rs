//! The CIDR library (upstream `library/cidr.go`): `cidr()`, `isCIDR`, `string()`, and
//! `containsIP`, `containsCIDR`, `ip`, `masked`, `prefixLength` on CIDRs. Parsing is Go's
//! `netip.ParsePrefix`, refusing IPv4-mapped addresses as upstream; host bits after the
//! prefix are kept (`cidr('10.0.0.1/8').ip()` is `10.0.0.1`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cel_rust::common::types::{CelBool, CelInt, CelString, STRING_TYPE, Type};
use cel_rust::common::value::CowVal;
use cel_rust::{DeclarationError, Env, ExecutionError};

use super::ip::{self, IP_TYPE, Ip};
use super::{charge_str, library_val, nth, str_arg};

static CIDR_TYPE: Type = Type::new_unspecified_type("net.CIDR");

/// An address and a prefix length that fits its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    bits: u8,
}

library_val!(Cidr, CIDR_TYPE);

/// `addr` with the bits after the first `bits` cleared.
fn mask(addr: IpAddr, bits: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl Cidr {
    fn masked(self) -> Cidr {
        Cidr {
            addr: mask(self.addr, self.bits),
            bits: self.bits,
        }
    }

    /// Go's `Prefix.Contains`: same family, same leading bits.
    fn contains_ip(self, ip: IpAddr) -> bool {
        self.addr.is_ipv4() == ip.is_ipv4() && mask(ip, self.bits) == mask(self.addr, self.bits)
    }

    /// Upstream's containment (as fixed in Kubernetes 1.33): `other`'s address masked to
    /// this prefix is this network, and `other` is no larger.
    fn contains_cidr(self, other: Cidr) -> bool {
        self.contains_ip(other.addr) && self.bits <= other.bits
    }
}

/// Go's `netip.ParsePrefix`, with its error text.
fn go_parse_prefix(s: &str) -> Result<Cidr, String> {
    let err = |msg: &str| format!("netip.ParsePrefix({s:?}): {msg}");
    let Some((addr, bits)) = s.rsplit_once('/') else {
        return Err(err("no '/'"));
    };
    let (addr, zone) = ip::go_parse_addr(addr).map_err(|e| err(&e))?;
    if addr.is_ipv6() && !zone.is_empty() {
        return Err(err("IPv6 zones cannot be present in a prefix"));
    }
    // Go refuses a sign and leading zeros, then takes a decimal int.
    let bad_bits = || err(&format!("bad bits after slash: {bits:?}"));
    if bits.len() > 1 && !bits.starts_with(|c: char| ('1'..='9').contains(&c)) {
        return Err(bad_bits());
    }
    if !bits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_bits());
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match bits.parse::<i64>() {
        Err(_) => Err(bad_bits()),
        Ok(b) if b <= max => Ok(Cidr {
            addr,
            bits: b as u8,
        }),
        Ok(_) => Err(err("prefix length out of range")),
    }
}

/// Upstream's `parseCIDR`, with the message `cidr()` reports.
pub(crate) fn parse(raw: &str) -> Result<Cidr, String> {
    // Upstream wraps the parse error in this prefix twice (once here, once in `cidr()`).
    const CONTEXT: &str = "network address parse error during conversion from string";
    let c = go_parse_prefix(raw).map_err(|e| format!("{CONTEXT}: {CONTEXT}: {e}"))?;
    if ip::is_4in6(&c.addr) {
        return Err(format!(
            "{CONTEXT}: IPv4-mapped IPv6 address {raw:?} is not allowed"
        ));
    }
    Ok(c)
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let c = || CIDR_TYPE.to_owned();
    env.add_overload("cidr", "string_to_cidr", vec![STRING_TYPE], to_cidr)?;
    env.add_overload("isCIDR", "is_cidr", vec![STRING_TYPE], is_cidr)?;
    env.add_overload("string", "cidr_to_string", vec![c()], to_string)?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_string",
        c(),
        vec![STRING_TYPE],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsIP",
        "cidr_contains_ip_ip",
        c(),
        vec![IP_TYPE.to_owned()],
        contains_ip,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr_string",
        c(),
        vec![STRING_TYPE],
        contains_cidr,
    )?;
    env.add_member_overload(
        "containsCIDR",
        "cidr_contains_cidr",
        c(),
        vec![c()],
        contains_cidr,
    )?;
    env.add_member_overload("ip", "cidr_ip", c(), vec![], to_ip)?;
    env.add_member_overload(
        "prefixLength",
        "cidr_prefix_length",
        c(),
        vec![],
        prefix_length,
    )?;
    env.add_member_overload("masked", "cidr_masked", c(), vec![], masked)?;
    Ok(())
}

fn cidr_arg(args: &[CowVal<'_, '_>], i: usize, function: &str) -> Result<Cidr, ExecutionError> {
    let v = nth(args, i)?;
    if let Some(c) = v.downcast_ref::<Cidr>() {
        return Ok(*c);
    }
    // The string overloads parse as `cidr()` does, with its error.
    let s = str_arg(function, v.as_ref())?;
    charge_str(s);
    parse(s).map_err(|e| ExecutionError::function_error(function, e))
}

fn to_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(cidr_arg(&args, 0, "cidr")?))
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = str_arg("isCIDR", nth(&args, 0)?.as_ref())?;
    charge_str(s);
    Ok(CowVal::owned(CelBool::from(parse(s).is_ok())))
}

fn to_string<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args, 0, "string")?;
    let s = format!("{}/{}", ip::to_go_string(&c.addr), c.bits);
    Ok(CowVal::owned(CelString::from(s)))
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args, 0, "containsIP")?;
    let other = nth(&args, 1)?;
    let addr = match other.downcast_ref::<Ip>() {
        Some(ip) => ip.0,
        None => {
            let s = str_arg("containsIP", other.as_ref())?;
            charge_str(s);
            // Upstream loses the parse error here and reports the overload as missing.
            ip::parse(s)
                .map_err(|_| ExecutionError::function_error("containsIP", "no such overload"))?
                .0
        }
    };
    Ok(CowVal::owned(CelBool::from(c.contains_ip(addr))))
}

fn contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args, 0, "containsCIDR")?;
    let other = cidr_arg(&args, 1, "containsCIDR")?;
    Ok(CowVal::owned(CelBool::from(c.contains_cidr(other))))
}

fn to_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(Ip(cidr_arg(&args, 0, "ip")?.addr)))
}

fn prefix_length<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let c = cidr_arg(&args, 0, "prefixLength")?;
    Ok(CowVal::owned(CelInt::from(i64::from(c.bits))))
}

fn masked<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    Ok(CowVal::owned(cidr_arg(&args, 0, "masked")?.masked()))
}
