//! Kubernetes' CEL libraries and the standard functions.

use super::{assert_all, eval_err};

#[test]
fn lists_library() {
    assert_all(&[
        "[1, 2, 3].isSorted()",
        "!([3, 1].isSorted())",
        "['a', 'b'].isSorted()",
        "[1, 2, 3].sum() == 6",
        "[1.0, 2.5].sum() == 3.5",
        "[].sum() == 0",
        "[duration('1s'), duration('2s')].sum() == duration('3s')",
        "[3, 1, 2].min() == 1",
        "[3, 1, 2].max() == 3",
        "['b', 'a'].min() == 'a'",
        "[1, 2, 2, 3].indexOf(2) == 1",
        "[1, 2, 2, 3].lastIndexOf(2) == 2",
        "['a'].indexOf('z') == -1",
    ]);
    assert!(eval_err("[].min()").contains("min called on empty list"));
}

#[test]
fn regex_library() {
    assert_all(&[
        "'abc 123'.find('[0-9]+') == '123'",
        "'abc'.find('[0-9]+') == ''",
        "'123 abc 456'.findAll('[0-9]+') == ['123', '456']",
        "'123 abc 456'.findAll('[0-9]+', 1) == ['123']",
        "'123 abc 456'.findAll('[0-9]+', -1) == ['123', '456']",
        "'abc'.matches('^a.c$')",
    ]);
}

#[test]
fn sets_library() {
    assert_all(&[
        "sets.contains([1, 2, 3], [3, 1])",
        "!sets.contains([1], [2])",
        "sets.equivalent([1, 2, 2], [2, 1])",
        "!sets.equivalent([1], [1, 2])",
        "sets.intersects([1, 2], [2, 5])",
        "!sets.intersects([1], [])",
    ]);
}

#[test]
fn urls_library() {
    assert_all(&[
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getScheme() == 'https'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getHost() == 'kubernetes.io:80'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getHostname() == 'kubernetes.io'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getPort() == '80'",
        "url('https://user:pass@kubernetes.io:80/path?query=val#fragment').getEscapedPath() == '/path'",
        "url('https://kubernetes.io/?k=a&k=b&x=%20y').getQuery() == {'k': ['a', 'b'], 'x': [' y']}",
        "url('https://[::1]:80/').getHostname() == '::1'",
        "url('https://[::1]/').getHost() == '[::1]'",
        "url('https://[::1]/').getPort() == ''",
        "url('/path').getScheme() == ''",
        "url('https://example.com/path with spaces/').getEscapedPath() == '/path%20with%20spaces/'",
        "url('https://example.com').getEscapedPath() == ''",
        "url('https://127.0.0.1:80/').getHostname() == '127.0.0.1'",
        "url('/path').getHost() == '' && url('/path').getPort() == ''",
        "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
        "url('https://example.com/path?key with spaces=value with spaces').getQuery() == {'key with spaces': ['value with spaces']}",
        "url('https://example.com/path?').getQuery() == {}",
        "!isURL('https://a:b:c/')",
        "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
        "isURL('https://kubernetes.io/')",
        "isURL('/absolute-path')",
        "!isURL('../relative-path')",
        "!isURL('https://kubernetes.io/%')",
        "!isURL('://example.com')",
        "!isURL('')",
    ]);
    assert!(eval_err("url('../x')").contains("URL parse error during conversion from string"));
}

#[test]
fn quantity_library() {
    assert_all(&[
        "quantity('50M').isLessThan(quantity('50Mi'))",
        "quantity('50Mi').isGreaterThan(quantity('50M'))",
        "quantity('1').compareTo(quantity('2')) == -1",
        "quantity('2').compareTo(quantity('2000m')) == 0",
        "quantity('1Ki').asInteger() == 1024",
        "quantity('1Ki').isInteger()",
        "!quantity('1.5').isInteger()",
        "quantity('200m').asApproximateFloat() == 0.2",
        "quantity('50k').add(quantity('20')) == quantity('50.02k')",
        "quantity('50k').add(20) == quantity('50020')",
        "quantity('50k').sub(quantity('20')) == quantity('49980')",
        "quantity('50k').sub(20).isInteger()",
        "quantity('-1').sign() == -1 && sign(quantity('-1')) == -1",
        "quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')",
        "quantity('200M').compareTo(quantity('0.2G')) == 0",
        "quantity('50000000G').isInteger() && quantity('50k').asInteger() == 50000",
        "quantity('50k').sub(20000).asApproximateFloat() == 30000.0",
        "quantity('1.5G').mul(2) == quantity('3G')",
        "!isQuantity('200K') && !isQuantity('Mi') && !isQuantity('1,3G') && isQuantity('10000k')",
        "quantity('0').sign() == 0",
        "quantity('10Gi').sign() == 1",
        "isQuantity('20Mi')",
        "isQuantity('1e3')",
        "!isQuantity('1.5.5')",
        "!isQuantity('abc')",
        "!isQuantity(' 1')",
    ]);
    assert!(eval_err("quantity('1.5').asInteger()").contains("cannot convert value to integer"));
    assert!(eval_err("quantity('x')").contains("quantities must match the regular expression"));
}

#[test]
fn strings_library_and_builtins() {
    assert_all(&[
        "'hello'.charAt(1) == 'e'",
        "'hello'.indexOf('l') == 2",
        "'hello'.lastIndexOf('l') == 3",
        "'TacoCat'.lowerAscii() == 'tacocat'",
        "'TacoCat'.upperAscii() == 'TACOCAT'",
        "'aaa'.replace('a', 'b') == 'bbb'",
        "'a,b'.split(',') == ['a', 'b']",
        "'hello'.substring(1, 3) == 'el'",
        "'  x '.trim() == 'x'",
        "['a', 'b'].join('-') == 'a-b'",
        "size([1, 2]) == 2 && size('abc') == 3",
        "has({'a': 1}.a) && !has({'a': 1}.b)",
        "'abc'.startsWith('a') && 'abc'.endsWith('c') && 'abc'.contains('b')",
        "[1, 2].all(x, x > 0) && [1, 2].exists(x, x == 2) && [1, 2].exists_one(x, x == 1)",
        "[1, 2].map(x, x * 2) == [2, 4] && [1, 2].filter(x, x > 1) == [2]",
    ]);
}
