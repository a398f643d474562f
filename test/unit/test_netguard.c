/* Unit tests of netguard: IPv4/IPv6 classification at every range edge, IPv4-mapped,
 * -compatible and NAT64 forms, CIDR parsing (valid, invalid, host bits, mapped CIDRs),
 * matching across families, the guard decision with and without an allow list, and
 * address formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "netguard.h"

/* A socket address from text (IPv4 or IPv6). */
typedef struct {
    struct sockaddr_storage ss;
    size_t len;
} sa_t;

static sa_t sa(const char *ip)
{
    sa_t s;
    memset(&s, 0, sizeof s);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&s.ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&s.ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(80);
        s.len = sizeof *a4;
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(80);
        s.len = sizeof *a6;
    } else {
        fail_msg("bad test address %s", ip);
    }
    return s;
}

static netguard_class_t cls(const char *ip)
{
    sa_t s = sa(ip);
    return netguard_classify((struct sockaddr *)&s.ss, s.len);
}

static void expect_class(const char *ip, netguard_class_t want)
{
    netguard_class_t got = cls(ip);
    if (got != want)
        fail_msg("%s: got %s, want %s", ip, netguard_class_name(got), netguard_class_name(want));
}

static void test_ipv4_classes(void **state)
{
    (void)state;
    expect_class("0.0.0.0", NETGUARD_UNSPECIFIED);
    expect_class("0.0.0.1", NETGUARD_THIS_NETWORK);
    expect_class("0.255.255.255", NETGUARD_THIS_NETWORK);
    expect_class("1.0.0.0", NETGUARD_PUBLIC);
    expect_class("9.255.255.255", NETGUARD_PUBLIC);
    expect_class("10.0.0.0", NETGUARD_PRIVATE);
    expect_class("10.255.255.255", NETGUARD_PRIVATE);
    expect_class("11.0.0.0", NETGUARD_PUBLIC);
    expect_class("100.63.255.255", NETGUARD_PUBLIC);
    expect_class("100.64.0.0", NETGUARD_CGNAT);
    expect_class("100.127.255.255", NETGUARD_CGNAT);
    expect_class("100.128.0.0", NETGUARD_PUBLIC);
    expect_class("126.255.255.255", NETGUARD_PUBLIC);
    expect_class("127.0.0.0", NETGUARD_LOOPBACK);
    expect_class("127.0.0.1", NETGUARD_LOOPBACK);
    expect_class("127.255.255.255", NETGUARD_LOOPBACK);
    expect_class("128.0.0.0", NETGUARD_PUBLIC);
    expect_class("169.253.255.255", NETGUARD_PUBLIC);
    expect_class("169.254.0.0", NETGUARD_LINK_LOCAL);
    expect_class("169.254.169.254", NETGUARD_LINK_LOCAL);
    expect_class("169.255.0.0", NETGUARD_PUBLIC);
    expect_class("172.15.255.255", NETGUARD_PUBLIC);
    expect_class("172.16.0.0", NETGUARD_PRIVATE);
    expect_class("172.31.255.255", NETGUARD_PRIVATE);
    expect_class("172.32.0.0", NETGUARD_PUBLIC);
    expect_class("192.167.255.255", NETGUARD_PUBLIC);
    expect_class("192.168.0.0", NETGUARD_PRIVATE);
    expect_class("192.168.255.255", NETGUARD_PRIVATE);
    expect_class("192.169.0.0", NETGUARD_PUBLIC);
    expect_class("223.255.255.255", NETGUARD_PUBLIC);
    expect_class("224.0.0.0", NETGUARD_MULTICAST);
    expect_class("239.255.255.255", NETGUARD_MULTICAST);
    expect_class("240.0.0.0", NETGUARD_RESERVED);
    expect_class("255.255.255.255", NETGUARD_RESERVED);
    expect_class("8.8.8.8", NETGUARD_PUBLIC);
    expect_class("93.184.216.34", NETGUARD_PUBLIC);
}

static void test_ipv6_classes(void **state)
{
    (void)state;
    expect_class("::", NETGUARD_UNSPECIFIED);
    expect_class("::1", NETGUARD_LOOPBACK);
    expect_class("::2", NETGUARD_THIS_NETWORK); /* IPv4-compatible 0.0.0.2 */
    expect_class("2001:db8::1", NETGUARD_PUBLIC);
    expect_class("2606:4700::1111", NETGUARD_PUBLIC);
    expect_class("fbff:ffff::1", NETGUARD_PUBLIC);
    expect_class("fc00::", NETGUARD_PRIVATE);
    expect_class("fd12:3456::1", NETGUARD_PRIVATE);
    expect_class("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_PRIVATE);
    expect_class("fe00::1", NETGUARD_PUBLIC);
    expect_class("fe7f:ffff::1", NETGUARD_PUBLIC);
    expect_class("fe80::", NETGUARD_LINK_LOCAL);
    expect_class("fe80::1", NETGUARD_LINK_LOCAL);
    expect_class("febf:ffff::1", NETGUARD_LINK_LOCAL);
    expect_class("fec0::1", NETGUARD_PRIVATE); /* deprecated site-local */
    expect_class("feff::1", NETGUARD_PRIVATE);
    expect_class("ff00::", NETGUARD_MULTICAST);
    expect_class("ff02::1", NETGUARD_MULTICAST);
    expect_class("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NETGUARD_MULTICAST);
    expect_class("::1:0:0:1", NETGUARD_PUBLIC);
}

static void test_ipv6_embedded_ipv4(void **state)
{
    (void)state;
    /* IPv4-mapped */
    expect_class("::ffff:127.0.0.1", NETGUARD_LOOPBACK);
    expect_class("::ffff:7f00:1", NETGUARD_LOOPBACK);
    expect_class("::ffff:10.1.2.3", NETGUARD_PRIVATE);
    expect_class("::ffff:169.254.169.254", NETGUARD_LINK_LOCAL);
    expect_class("::ffff:100.64.0.1", NETGUARD_CGNAT);
    expect_class("::ffff:0.0.0.0", NETGUARD_UNSPECIFIED);
    expect_class("::ffff:0.1.2.3", NETGUARD_THIS_NETWORK);
    expect_class("::ffff:224.0.0.1", NETGUARD_MULTICAST);
    expect_class("::ffff:8.8.8.8", NETGUARD_PUBLIC);
    /* IPv4-compatible (deprecated) */
    expect_class("::127.0.0.1", NETGUARD_LOOPBACK);
    expect_class("::192.168.1.1", NETGUARD_PRIVATE);
    expect_class("::8.8.8.8", NETGUARD_PUBLIC);
    /* NAT64 well-known prefix */
    expect_class("64:ff9b::127.0.0.1", NETGUARD_LOOPBACK);
    expect_class("64:ff9b::a9fe:a9fe", NETGUARD_LINK_LOCAL);
    expect_class("64:ff9b::8.8.8.8", NETGUARD_PUBLIC);
    /* not embedded: ::fffe:... and ::1:ffff:... are plain IPv6 */
    expect_class("::fffe:7f00:1", NETGUARD_PUBLIC);
    expect_class("0:0:0:0:1:ffff:7f00:1", NETGUARD_PUBLIC);
}

static void test_classify_odd_inputs(void **state)
{
    (void)state;
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof a4);
    a4.sin_family = AF_INET;
    assert_int_equal(netguard_classify((struct sockaddr *)&a4, sizeof a4), NETGUARD_UNSPECIFIED);
    assert_int_equal(netguard_classify((struct sockaddr *)&a4, 4), NETGUARD_UNKNOWN); /* short */
    assert_int_equal(netguard_classify(NULL, 0), NETGUARD_UNKNOWN);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX;
    assert_int_equal(netguard_classify((struct sockaddr *)&ss, sizeof ss), NETGUARD_UNKNOWN);
    unsigned char raw[16] = {127, 0, 0, 1};
    assert_int_equal(netguard_classify_raw(AF_INET, raw), NETGUARD_LOOPBACK);
    assert_int_equal(netguard_classify_raw(AF_UNIX, raw), NETGUARD_UNKNOWN);
    assert_int_equal(netguard_classify_raw(AF_INET, NULL), NETGUARD_UNKNOWN);
    assert_string_equal(netguard_class_name(NETGUARD_LOOPBACK), "loopback");
    assert_string_equal(netguard_class_name(NETGUARD_LINK_LOCAL), "link-local");
    assert_string_equal(netguard_class_name((netguard_class_t)99), "unknown");
}

static void expect_cidr(const char *text, int family, const char *addr, unsigned prefix)
{
    netguard_cidr_t c;
    if (netguard_cidr_parse(text, &c) != 0) fail_msg("%s should parse", text);
    assert_int_equal(c.family, family);
    assert_int_equal(c.prefix, prefix);
    unsigned char want[16] = {0};
    assert_int_equal(inet_pton(family, addr, want), 1);
    assert_memory_equal(c.addr, want, family == AF_INET ? 4 : 16);
}

static void test_cidr_parse_valid(void **state)
{
    (void)state;
    expect_cidr("10.0.0.0/8", AF_INET, "10.0.0.0", 8);
    expect_cidr("10.1.2.3/8", AF_INET, "10.0.0.0", 8); /* host bits cleared */
    expect_cidr("192.168.1.129/25", AF_INET, "192.168.1.128", 25);
    expect_cidr("0.0.0.0/0", AF_INET, "0.0.0.0", 0);
    expect_cidr("127.0.0.1/32", AF_INET, "127.0.0.1", 32);
    expect_cidr("127.0.0.1", AF_INET, "127.0.0.1", 32); /* bare address: one host */
    expect_cidr("172.16.255.1/12", AF_INET, "172.16.0.0", 12);
    expect_cidr("::1/128", AF_INET6, "::1", 128);
    expect_cidr("::1", AF_INET6, "::1", 128);
    expect_cidr("fd00::/8", AF_INET6, "fd00::", 8);
    expect_cidr("fe80::1:2/10", AF_INET6, "fe80::", 10);
    expect_cidr("::/0", AF_INET6, "::", 0);
    expect_cidr("2001:db8:abcd:12ff::/63", AF_INET6, "2001:db8:abcd:12fe::", 63);
    /* mapped CIDRs become IPv4 ones */
    expect_cidr("::ffff:10.0.0.0/104", AF_INET, "10.0.0.0", 8);
    expect_cidr("::ffff:127.0.0.1", AF_INET, "127.0.0.1", 32);
    expect_cidr("::ffff:0:0/96", AF_INET, "0.0.0.0", 0);
    expect_cidr("::ffff:0:0/95", AF_INET6, "::fffe:0:0", 95); /* wider: stays IPv6 */
}

static void test_cidr_parse_invalid(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "/",
                                "/8",
                                "10.0.0.0/",
                                "10.0.0.0/33",
                                "10.0.0.0/-1",
                                "10.0.0.0/+8",
                                "10.0.0.0/ 8",
                                "10.0.0.0 /8",
                                " 10.0.0.0/8",
                                "10.0.0.0/8 ",
                                "10.0.0.0/0008",
                                "10.0.0.0/8/8",
                                "10.0.0/8",
                                "10.0.0.0.0/8",
                                "256.0.0.0/8",
                                "010.0.0.0/8x",
                                "10.0.0.0/a",
                                "::1/129",
                                "::1/1000",
                                "fe80::1%eth0/64",
                                "1:2:3:4:5:6:7:8:9/64",
                                "example.com/8",
                                "localhost",
                                "10.0.0.0/8\n",
                                "0x7f000001/32",
                                "2130706433",
                                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.1/128"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        netguard_cidr_t c;
        if (netguard_cidr_parse(bad[i], &c) == 0) fail_msg("\"%s\" should be invalid", bad[i]);
    }
    netguard_cidr_t c;
    assert_int_equal(netguard_cidr_parse(NULL, &c), -1);
    char long_text[200];
    memset(long_text, '1', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = 0;
    assert_int_equal(netguard_cidr_parse(long_text, &c), -1);
}

static bool match(const char *cidr, const char *ip)
{
    netguard_cidr_t c;
    if (netguard_cidr_parse(cidr, &c) != 0) fail_msg("%s should parse", cidr);
    sa_t s = sa(ip);
    return netguard_cidr_match(&c, (struct sockaddr *)&s.ss, s.len);
}

static void test_cidr_match(void **state)
{
    (void)state;
    assert_true(match("127.0.0.0/8", "127.0.0.1"));
    assert_true(match("127.0.0.0/8", "127.255.255.255"));
    assert_false(match("127.0.0.0/8", "128.0.0.0"));
    assert_false(match("127.0.0.0/8", "126.255.255.255"));
    assert_true(match("192.168.1.128/25", "192.168.1.200"));
    assert_false(match("192.168.1.128/25", "192.168.1.127"));
    assert_true(match("0.0.0.0/0", "8.8.8.8"));
    assert_true(match("10.1.2.3/32", "10.1.2.3"));
    assert_false(match("10.1.2.3/32", "10.1.2.4"));
    assert_true(match("fd00::/8", "fd12::1"));
    assert_false(match("fd00::/8", "fc12::1"));
    assert_true(match("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(match("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(match("::/0", "::1"));
    /* across families: IPv4 CIDRs match IPv4-mapped addresses and vice versa */
    assert_true(match("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_false(match("127.0.0.0/8", "::ffff:128.0.0.1"));
    assert_false(match("127.0.0.0/8", "::127.0.0.1")); /* compatible form: not mapped */
    assert_false(match("127.0.0.0/8", "::1"));
    assert_true(match("::ffff:0:0/95", "127.0.0.1"));
    assert_false(match("fd00::/8", "10.0.0.1"));
    assert_true(match("::/0", "10.0.0.1")); /* ::/0 covers the mapped form too */
    netguard_cidr_t c;
    assert_int_equal(netguard_cidr_parse("10.0.0.0/8", &c), 0);
    assert_false(netguard_cidr_match(&c, NULL, 0));
    assert_false(netguard_cidr_match(NULL, NULL, 0));
}

static bool allowed(const netguard_t *g, const char *ip, netguard_class_t *c)
{
    sa_t s = sa(ip);
    return netguard_allowed(g, (struct sockaddr *)&s.ss, s.len, c);
}

static void test_guard_off_allows_everything(void **state)
{
    (void)state;
    netguard_t g;
    assert_int_equal(netguard_init(&g, false, NULL, 0, NULL, 0), 0);
    netguard_class_t c;
    assert_true(allowed(&g, "127.0.0.1", &c));
    assert_int_equal(c, NETGUARD_LOOPBACK);
    assert_true(allowed(&g, "169.254.169.254", NULL));
    assert_true(allowed(NULL, "10.0.0.1", NULL));
    netguard_free(&g);
}

static void test_guard_on(void **state)
{
    (void)state;
    netguard_t g;
    assert_int_equal(netguard_init(&g, true, NULL, 0, NULL, 0), 0);
    static const char *refused[] = {
        "127.0.0.1",       "10.0.0.1",        "172.16.0.1", "192.168.0.1",
        "169.254.169.254", "100.64.0.1",      "0.0.0.0",    "0.1.2.3",
        "224.0.0.1",       "255.255.255.255", "::1",        "::",
        "fd00::1",         "fe80::1",         "ff02::1",    "::ffff:127.0.0.1",
        "::ffff:10.0.0.1", "64:ff9b::7f00:1"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (allowed(&g, refused[i], NULL)) fail_msg("%s should be refused", refused[i]);
    netguard_class_t c = NETGUARD_LOOPBACK;
    assert_true(allowed(&g, "8.8.8.8", &c));
    assert_int_equal(c, NETGUARD_PUBLIC);
    assert_true(allowed(&g, "2001:4860:4860::8888", NULL));
    assert_true(allowed(&g, "::ffff:8.8.8.8", NULL));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = AF_UNIX; /* unknown families are refused when on */
    assert_false(netguard_allowed(&g, (struct sockaddr *)&ss, sizeof ss, &c));
    assert_int_equal(c, NETGUARD_UNKNOWN);
    netguard_free(&g);
}

static void test_guard_allow_list(void **state)
{
    (void)state;
    const char *cidrs[] = {"127.0.0.0/8", "fd00:1::/32", "10.1.2.3"};
    netguard_t g;
    char err[128] = "";
    assert_int_equal(netguard_init(&g, true, cidrs, 3, err, sizeof err), 0);
    assert_int_equal(g.n_allow, 3);
    netguard_class_t c;
    assert_true(allowed(&g, "127.0.0.1", &c));
    assert_int_equal(c, NETGUARD_LOOPBACK);
    assert_true(allowed(&g, "127.1.2.3", NULL));
    assert_true(allowed(&g, "::ffff:127.0.0.1", NULL));
    assert_true(allowed(&g, "fd00:1:2::3", NULL));
    assert_true(allowed(&g, "10.1.2.3", NULL));
    assert_false(allowed(&g, "10.1.2.4", NULL));
    assert_false(allowed(&g, "::1", NULL)); /* IPv6 loopback is not 127.0.0.0/8 */
    assert_false(allowed(&g, "fd00:2::1", NULL));
    assert_false(allowed(&g, "169.254.169.254", NULL));
    netguard_free(&g);
    netguard_free(&g); /* idempotent */
}

static void test_guard_init_invalid(void **state)
{
    (void)state;
    const char *cidrs[] = {"127.0.0.0/8", "10.0.0.0/33"};
    netguard_t g;
    char err[128] = "";
    assert_int_equal(netguard_init(&g, true, cidrs, 2, err, sizeof err), -1);
    assert_string_equal(err, "entry \"10.0.0.0/33\" is not a valid CIDR");
    assert_null(g.allow);
    assert_int_equal(g.n_allow, 0);
    assert_int_equal(netguard_init(&g, true, cidrs, 2, NULL, 0), -1);
}

static void expect_str(const char *ip, const char *want)
{
    sa_t s = sa(ip);
    char buf[64];
    netguard_addr_str((struct sockaddr *)&s.ss, s.len, buf, sizeof buf);
    assert_string_equal(buf, want);
}

static void test_addr_str(void **state)
{
    (void)state;
    expect_str("127.0.0.1", "127.0.0.1");
    expect_str("::1", "::1");
    expect_str("::ffff:10.0.0.1", "10.0.0.1");
    expect_str("fe80::0001", "fe80::1");
    char buf[8];
    netguard_addr_str(NULL, 0, buf, sizeof buf);
    assert_string_equal(buf, "(unknow"); /* truncated, still terminated */
    sa_t s = sa("255.255.255.255");
    netguard_addr_str((struct sockaddr *)&s.ss, s.len, buf, sizeof buf);
    assert_string_equal(buf, "255.255");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_classes),
        cmocka_unit_test(test_ipv6_classes),
        cmocka_unit_test(test_ipv6_embedded_ipv4),
        cmocka_unit_test(test_classify_odd_inputs),
        cmocka_unit_test(test_cidr_parse_valid),
        cmocka_unit_test(test_cidr_parse_invalid),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_guard_off_allows_everything),
        cmocka_unit_test(test_guard_on),
        cmocka_unit_test(test_guard_allow_list),
        cmocka_unit_test(test_guard_init_invalid),
        cmocka_unit_test(test_addr_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
