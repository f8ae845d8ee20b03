//! The IP, CIDR and named-format libraries, with upstream's examples and messages.

use super::{assert_all, eval, eval_err};

#[test]
fn ip_library() {
    assert_all(&[
        "isIP('127.0.0.1') && isIP('::1') && isIP('2001:db8::68') && isIP('::')",
        "!isIP('127.0.0.256') && !isIP(':::1') && !isIP('') && !isIP('1.2.3') && !isIP('foo')",
        // Upstream refuses IPv4-mapped addresses, zones and leading zeros.
        "!isIP('::ffff:1.2.3.4') && !isIP('::ffff:102:304') && !isIP('fe80::1%eth0')",
        "!isIP('01.2.3.4') && !isIP('1.2.3.4.5') && !isIP('1::2::3') && !isIP('1:2:3:4:5:6:7:8:9')",
        "isIP('::1.2.3.4') && isIP('64:ff9b::1.2.3.4') && !isIP('1.2.3.4/32')",
        "ip('127.0.0.1').family() == 4 && ip('::1').family() == 6",
        "ip('0.0.0.0').isUnspecified() && ip('::').isUnspecified() && !ip('::1').isUnspecified()",
        "ip('127.0.0.1').isLoopback() && ip('127.1.2.3').isLoopback() && ip('::1').isLoopback()",
        "!ip('192.168.0.1').isLoopback() && !ip('2001:db8::abcd').isLoopback()",
        "ip('224.0.0.1').isLinkLocalMulticast() && !ip('224.0.1.1').isLinkLocalMulticast()",
        "ip('ff02::1').isLinkLocalMulticast() && !ip('fd00::1').isLinkLocalMulticast()",
        "!ip('ff05::1').isLinkLocalMulticast()",
        "ip('169.254.169.254').isLinkLocalUnicast() && !ip('192.168.0.1').isLinkLocalUnicast()",
        "ip('fe80::1').isLinkLocalUnicast() && !ip('fd80::1').isLinkLocalUnicast()",
        "ip('192.168.0.1').isGlobalUnicast() && !ip('255.255.255.255').isGlobalUnicast()",
        "ip('2001:db8::abcd').isGlobalUnicast() && !ip('ff00::1').isGlobalUnicast()",
        "!ip('0.0.0.0').isGlobalUnicast() && !ip('::1').isGlobalUnicast() && ip('fd00::1').isGlobalUnicast()",
        "ip('127.0.0.1') == ip('127.0.0.1') && ip('::1') != ip('::2')",
        "ip('2001:DB8::0:0:0:ABCD') == ip('2001:db8::abcd')",
        "string(ip('2001:DB8:0:0:0:0:0:ABCD')) == '2001:db8::abcd'",
        "string(ip('1:0:0:1:0:0:0:1')) == '1:0:0:1::1' && string(ip('1:0:0:2:0:0:3:4')) == '1::2:0:0:3:4'",
        "string(ip('1:0:2:3:4:5:6:7')) == '1:0:2:3:4:5:6:7' && string(ip('::1.2.3.4')) == '::102:304'",
        "string(ip('10.0.0.1')) == '10.0.0.1' && string(ip('1::')) == '1::'",
        "ip.isCanonical('127.0.0.1') && ip.isCanonical('2001:db8::abcd')",
        "!ip.isCanonical('2001:DB8::ABCD') && !ip.isCanonical('2001:db8::0:0:0:abcd')",
        "['1.2.3.4', 'example.com'].filter(h, isIP(h)) == ['1.2.3.4']",
        // A variable named like the `ip` namespace is the variable.
        "['1.2.3.4'].all(ip, ip.startsWith('1.') && isIP(ip))",
    ]);
    assert_eq!(
        eval_err("ip('127.0.0.256')"),
        "IP Address \"127.0.0.256\" parse error during conversion from string: ParseAddr(\"127.0.0.256\"): IPv4 field has value >255"
    );
    assert_eq!(
        eval_err("ip(':::1')"),
        "IP Address \":::1\" parse error during conversion from string: ParseAddr(\":::1\"): each colon-separated field must have at least one digit (at \":1\")"
    );
    assert_eq!(
        eval_err("ip('foo')"),
        "IP Address \"foo\" parse error during conversion from string: ParseAddr(\"foo\"): unable to parse IP"
    );
    assert_eq!(
        eval_err("ip('fe80::1%eth0')"),
        "IP address \"fe80::1%eth0\" with zone value is not allowed"
    );
    assert_eq!(
        eval_err("ip('::ffff:1.2.3.4')"),
        "IPv4-mapped IPv6 address \"::ffff:1.2.3.4\" is not allowed"
    );
    assert!(eval_err("ip.isCanonical('x')").contains("unable to parse IP"));
}

#[test]
fn cidr_library() {
    assert_all(&[
        "isCIDR('192.168.0.0/16') && isCIDR('::1/128') && isCIDR('0.0.0.0/0')",
        "!isCIDR('192.168.0.0/33') && !isCIDR('::1/129') && !isCIDR('1.2.3.4') && !isCIDR('1.2.3.4/01')",
        "!isCIDR('::ffff:1.2.3.4/120') && !isCIDR('fe80::1%eth0/64') && !isCIDR('1.2.3.4/+8')",
        // Host bits after the prefix are kept, as upstream.
        "isCIDR('192.168.0.1/16') && cidr('192.168.0.1/24').ip() == ip('192.168.0.1')",
        "cidr('192.168.0.0/24').containsIP(ip('192.168.0.1')) && !cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))",
        "cidr('192.168.0.0/24').containsIP('192.168.0.1') && !cidr('192.168.0.0/24').containsIP('192.168.1.1')",
        "cidr('192.168.0.1/24').containsIP('192.168.0.10') && !cidr('::/0').containsIP('1.2.3.4')",
        "cidr('2001:db8::/32').containsIP(ip('2001:db8::1')) && !cidr('2001:db8::/32').containsIP('2001:dc8::1')",
        "cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))",
        "!cidr('192.168.1.0/24').containsCIDR(cidr('192.168.2.0/24'))",
        "cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24') && !cidr('192.168.1.0/24').containsCIDR('192.168.2.0/24')",
        "cidr('192.168.0.0/24').containsCIDR('192.168.0.0/25') && !cidr('192.168.0.0/24').containsCIDR('192.168.0.0/23')",
        "cidr('192.168.0.0/16').containsCIDR('192.168.0.1/32') && !cidr('0.0.0.0/0').containsCIDR('::/0')",
        "cidr('2001:db8::/32').containsCIDR(cidr('2001:db8::/33')) && !cidr('2001:db8::/32').containsCIDR('2001:db8::/31')",
        "cidr('192.168.0.1/24').ip().family() == 4 && cidr('::1/128').ip().family() == 6",
        "cidr('192.168.0.0/24').masked() == cidr('192.168.0.0/24') && cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')",
        "cidr('192.168.0.1/24') != cidr('192.168.0.1/24').masked()",
        "cidr('2001:db8:1::/32').masked() == cidr('2001:db8::/32')",
        "cidr('192.168.0.0/16').prefixLength() == 16 && cidr('::1/128').prefixLength() == 128",
        "string(cidr('192.168.0.0/24')) == '192.168.0.0/24' && string(cidr('2001:DB8::/32')) == '2001:db8::/32'",
        "string(cidr('10.1.2.3/8').masked()) == '10.0.0.0/8'",
    ]);
    assert_eq!(
        eval_err("cidr('192.168.0.0/')"),
        "network address parse error during conversion from string: network address parse error during conversion from string: netip.ParsePrefix(\"192.168.0.0/\"): bad bits after slash: \"\""
    );
    assert_eq!(
        eval_err("cidr('2001:db8::/129')"),
        "network address parse error during conversion from string: network address parse error during conversion from string: netip.ParsePrefix(\"2001:db8::/129\"): prefix length out of range"
    );
    assert_eq!(
        eval_err("cidr('::ffff:1.2.3.4/120')"),
        "network address parse error during conversion from string: IPv4-mapped IPv6 address \"::ffff:1.2.3.4/120\" is not allowed"
    );
    assert!(eval_err("cidr('10.0.0.0/8').containsCIDR('x')").contains("no '/'"));
    assert!(
        eval_err("cidr('10.0.0.0/99999999999999999999')")
            .ends_with("bad bits after slash: \"99999999999999999999\"")
    );
    assert!(eval_err("cidr('10.0.0.0/300')").ends_with("prefix length out of range"));
    assert_eq!(
        eval_err("cidr('10.0.0.0/8').containsIP('x')"),
        "no such overload"
    );
}

#[test]
fn format_library() {
    assert_all(&[
        "!format.dns1123Label().validate('my-name').hasValue()",
        "format.dns1123Label().validate('My_Name').value() == [\"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')\"]",
        "format.dns1123Label().validate('a.b').value() == ['must not contain dots']",
        "!format.dns1123LabelPrefix().validate('my-prefix-').hasValue() && format.dns1123Label().validate('my-prefix-').hasValue()",
        "format.dns1123LabelPrefix().validate('é-').hasValue() && !format.dns1123LabelPrefix().validate('ab-').hasValue()",
        "!format.dns1123Subdomain().validate('apiextensions.k8s.io').hasValue()",
        "format.dns1123Subdomain().validate('-a').hasValue() && !format.dns1123SubdomainPrefix().validate('a.b-').hasValue()",
        "!format.dns1035Label().validate('my-label-name').hasValue() && format.dns1035Label().validate('1abc').hasValue()",
        "!format.qualifiedName().validate('apiextensions.k8s.io/v1beta1').hasValue()",
        "format.qualifiedName().validate('a/b/c').value()[0].startsWith('a qualified name must consist of')",
        "format.qualifiedName().validate('/x').value() == ['prefix part must be non-empty']",
        "!format.labelValue().validate('').hasValue() && format.labelValue().validate('-x').hasValue()",
        "!format.uri().validate('http://example.com').hasValue()",
        "format.uri().validate('example').value() == ['parse \"example\": invalid URI for request']",
        "!format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
        "format.uuid().validate('123e4567').value() == ['does not match the UUID format']",
        "!format.byte().validate('aGVsbG8=').hasValue() && format.byte().validate('!').value() == ['invalid base64']",
        "!format.date().validate('2021-01-01').hasValue() && format.date().validate('2021-02-30').value() == ['invalid date']",
        "!format.datetime().validate('2021-01-01T00:00:00Z').hasValue()",
        "!format.datetime().validate('2021-01-01t10:00:00.123+02:00').hasValue()",
        "format.datetime().validate('2021-01-01T25:00:00Z').value() == ['invalid datetime']",
        "format.named('dns1123Label').hasValue() && !format.named('nope').hasValue()",
        "format.named('dns1123Label').value() == format.dns1123Label()",
        "!format.named('uuid').value().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
        "'%s/%d'.format(['a', 1]) == 'a/1'",
    ]);
    let long = "a".repeat(64);
    assert!(eval(&format!(
        "format.dns1123Label().validate('{long}').value() == ['must be no more than 63 characters']"
    )));
}

#[test]
fn libraries_in_crd_rules() {
    use super::{invalid, rules, with_spec};
    use serde_json::json;
    let r = rules(with_spec(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 253},
            "cidrs": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 64}}
        },
        "x-kubernetes-validations": [
            {
                "rule": "!has(self.name) || !format.dns1123Label().validate(self.name).hasValue()",
                "messageExpression": "format.dns1123Label().validate(self.name).value().join(', ')"
            },
            {
                "rule": "!has(self.cidrs) || self.cidrs.all(c, isCIDR(c) && cidr(c).masked() == cidr(c))",
                "message": "CIDRs must be networks"
            }
        ]
    })));
    assert!(
        r.validate(
            &json!({"spec": {"name": "ok", "cidrs": ["10.0.0.0/8"]}}),
            None
        )
        .is_empty()
    );
    assert_eq!(
        r.validate(
            &json!({"spec": {"name": "a.b", "cidrs": ["10.0.0.1/8"]}}),
            None
        ),
        vec![
            invalid("spec", "object", "must not contain dots"),
            invalid("spec", "object", "CIDRs must be networks")
        ]
    );
}
