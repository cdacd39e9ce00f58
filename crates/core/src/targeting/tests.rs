use super::*;

#[test]
fn literal_patterns_become_string_tests_with_the_regex_answers() {
    let haystacks = [
        "",
        "/checkout",
        "/checkout/cart",
        "x/checkout",
        "a.b",
        "axb",
        "ab\n",
    ];
    for (pattern, ignore_case, literal) in [
        ("^/checkout", false, true),
        ("/checkout$", false, true),
        ("^/checkout$", false, true),
        ("checkout", false, true),
        ("a\\.b", false, true),
        ("^ab$", false, true),
        ("a.b", false, false),
        ("(?m)^ab$", false, false),
        ("^/Checkout", true, false),
        ("^/123", true, true),
        ("", false, false),
        ("a|b", false, false),
    ] {
        let compiled = Pattern::compile(pattern, ignore_case).expect("compiles");
        assert_eq!(
            matches!(compiled, Pattern::Literal(..)),
            literal,
            "{pattern}: {compiled:?}"
        );
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(ignore_case)
            .build()
            .expect("compiles");
        for haystack in haystacks {
            assert_eq!(
                compiled.is_match(haystack),
                regex.is_match(haystack),
                "{pattern} on {haystack:?}"
            );
        }
    }
}

/// CIDR blocks as integer masks hold exactly the addresses `ipnet` says they hold,
/// across families, prefix lengths and networks written with host bits set.
#[test]
fn cidr_masks_agree_with_ipnet() {
    let nets = [
        "10.0.0.0/8",
        "10.1.2.3/8",
        "192.168.1.0/24",
        "0.0.0.0/0",
        "10.2.3.4/32",
        "2001:db8::/32",
        "::/0",
        "fe80::1/128",
        "2001:db8:abcd::/48",
    ];
    let ips = [
        "10.2.3.4",
        "11.0.0.0",
        "9.255.255.255",
        "192.168.1.77",
        "192.168.2.1",
        "0.0.0.0",
        "2001:db8::1",
        "2001:db9::1",
        "fe80::1",
        "fe80::2",
        "::ffff:10.2.3.4",
        "::",
    ];
    for net in nets {
        let parsed: IpNet = net.parse().expect("net");
        let cidr = Cidr::from(parsed);
        for ip in ips {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(cidr.contains(ip), parsed.contains(&ip), "{net} ∋ {ip}");
        }
    }
}
