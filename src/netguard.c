/* netguard: the address rules of the SSRF guard (processor.block_private_networks,
 * processor.allow_cidrs). Classifies raw IPv4/IPv6 addresses, parses and matches
 * CIDRs, and answers "may we connect there?" for a socket address. It has no state
 * besides the parsed allow list and no I/O but the socket() of its checkpoint; fetch
 * (downloads) and backend_http (callbacks) install netguard_socket as curl's
 * open-socket callback, i.e. it sees the address actually being connected to (after
 * DNS, on every redirect hop, and for proxies), and config uses netguard_cidr_parse to
 * validate the allow list at start. */
#include "netguard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V4_MAPPED_PREFIX 96 /* ::ffff:0:0/96 */

/* ---------- classification ---------- */

static netguard_class_t classify_v4(const unsigned char *a)
{
    if (a[0] == 0) return (a[1] | a[2] | a[3]) == 0 ? NETGUARD_UNSPECIFIED : NETGUARD_THIS_NETWORK;
    if (a[0] == 127) return NETGUARD_LOOPBACK;
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168))
        return NETGUARD_PRIVATE;
    if (a[0] == 169 && a[1] == 254) return NETGUARD_LINK_LOCAL;
    if (a[0] == 100 && (a[1] & 0xc0) == 64) return NETGUARD_CGNAT;
    if ((a[0] & 0xf0) == 224) return NETGUARD_MULTICAST;
    if ((a[0] & 0xf0) == 240) return NETGUARD_RESERVED;
    return NETGUARD_PUBLIC;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

/* ::ffff:a.b.c.d */
static bool is_v4_mapped(const unsigned char *a)
{
    return all_zero(a, 10) && a[10] == 0xff && a[11] == 0xff;
}

/* IPv6 forms that reach an IPv4 address: mapped (::ffff:0:0/96), the deprecated
 * IPv4-compatible ::a.b.c.d, and the NAT64 well-known prefix 64:ff9b::/96. */
static const unsigned char *embedded_v4(const unsigned char *a)
{
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (is_v4_mapped(a) || memcmp(a, nat64, 12) == 0) return a + 12;
    if (all_zero(a, 12) && !all_zero(a + 12, 3)) return a + 12; /* not :: or ::1 */
    return NULL;
}

static netguard_class_t classify_v6(const unsigned char *a)
{
    const unsigned char *v4 = embedded_v4(a);
    if (v4) return classify_v4(v4);
    if (all_zero(a, 15))
        return a[15] == 0   ? NETGUARD_UNSPECIFIED
               : a[15] == 1 ? NETGUARD_LOOPBACK
                            : classify_v4(a + 12);
    if (a[0] == 0xff) return NETGUARD_MULTICAST;
    if ((a[0] & 0xfe) == 0xfc) return NETGUARD_PRIVATE;                    /* fc00::/7 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return NETGUARD_LINK_LOCAL; /* fe80::/10 */
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return NETGUARD_PRIVATE;    /* fec0::/10 */
    return NETGUARD_PUBLIC;
}

netguard_class_t netguard_classify_raw(int family, const unsigned char *addr)
{
    if (!addr) return NETGUARD_UNKNOWN;
    if (family == AF_INET) return classify_v4(addr);
    if (family == AF_INET6) return classify_v6(addr);
    return NETGUARD_UNKNOWN;
}

/* The raw bytes of a socket address (4 or 16) and its family; -1 for other families
 * or a short length. */
static int raw_addr(const struct sockaddr *sa, size_t salen, int *family, unsigned char *out)
{
    struct sockaddr_storage ss;
    if (!sa || salen < sizeof(sa_family_t)) return -1;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, sa, salen < sizeof ss ? salen : sizeof ss);
    if (ss.ss_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
        memcpy(out, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        *family = AF_INET;
        return 0;
    }
    if (ss.ss_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
        memcpy(out, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

netguard_class_t netguard_classify(const struct sockaddr *sa, size_t salen)
{
    unsigned char a[16];
    int family;
    if (raw_addr(sa, salen, &family, a) < 0) return NETGUARD_UNKNOWN;
    return netguard_classify_raw(family, a);
}

const char *netguard_class_name(netguard_class_t c)
{
    static const char *names[] = {"public",    "loopback",    "private",        "link-local",
                                  "multicast", "unspecified", "shared (CGNAT)", "this-network",
                                  "reserved",  "unknown"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "unknown";
}

/* ---------- CIDRs ---------- */

static void clear_host_bits(unsigned char *a, size_t bytes, unsigned prefix)
{
    for (size_t i = 0; i < bytes; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= prefix)
            a[i] = 0;
        else if (prefix - bit < 8)
            a[i] &= (unsigned char)(0xff << (8 - (prefix - bit)));
    }
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    size_t full = prefix / 8;
    unsigned rest = prefix % 8;
    if (memcmp(a, b, full) != 0) return false;
    if (rest == 0) return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

/* "0".."128": digits only, no sign or blanks, at most three digits. */
static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3) return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

int netguard_cidr_parse(const char *text, netguard_cidr_t *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    if (!text || !out) return -1;
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    if (hlen == 0 || hlen >= sizeof host) return -1;
    memcpy(host, text, hlen);
    host[hlen] = 0;
    memset(out, 0, sizeof *out);
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    out->prefix = max;
    if (slash && parse_prefix(slash + 1, max, &out->prefix) < 0) return -1;
    if (out->family == AF_INET6 && is_v4_mapped(out->addr) && out->prefix >= V4_MAPPED_PREFIX) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= V4_MAPPED_PREFIX;
    }
    clear_host_bits(out->addr, out->family == AF_INET ? 4 : 16, out->prefix);
    return 0;
}

bool netguard_cidr_match(const netguard_cidr_t *c, const struct sockaddr *sa, size_t salen)
{
    unsigned char a[16];
    int family;
    if (!c || raw_addr(sa, salen, &family, a) < 0) return false;
    if (c->family == AF_INET && family == AF_INET6) {
        if (!is_v4_mapped(a)) return false;
        return prefix_equal(c->addr, a + 12, c->prefix);
    }
    if (c->family == AF_INET6 && family == AF_INET) { /* as ::ffff:a.b.c.d */
        memmove(a + 12, a, 4);
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
    }
    return prefix_equal(c->addr, a, c->prefix);
}

/* ---------- the guard ---------- */

int netguard_init(netguard_t *g, bool on, const char *const *cidrs, size_t n, char *err,
                  size_t errlen)
{
    memset(g, 0, sizeof *g);
    g->on = on;
    if (n == 0) return 0;
    g->allow = calloc(n, sizeof *g->allow);
    if (!g->allow) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (netguard_cidr_parse(cidrs[i], &g->allow[g->n_allow]) < 0) {
            if (err && errlen)
                snprintf(err, errlen, "entry \"%s\" is not a valid CIDR", cidrs[i] ? cidrs[i] : "");
            netguard_free(g);
            return -1;
        }
        g->n_allow++;
    }
    return 0;
}

void netguard_free(netguard_t *g)
{
    if (!g) return;
    free(g->allow);
    g->allow = NULL;
    g->n_allow = 0;
}

void netguard_setup(netguard_t *g, bool on, const char *const *cidrs, size_t n)
{
    if (netguard_init(g, on, on ? cidrs : NULL, on ? n : 0, NULL, 0) < 0) g->on = true;
}

int netguard_socket(const netguard_t *g, int family, int socktype, int protocol,
                    const struct sockaddr *sa, size_t salen, netguard_class_t *cls, char *refused,
                    size_t len)
{
    if (!netguard_allowed(g, sa, salen, cls)) {
        netguard_addr_str(sa, salen, refused, len);
        return -2;
    }
    return socket(family, socktype | SOCK_CLOEXEC, protocol);
}

bool netguard_allowed(const netguard_t *g, const struct sockaddr *sa, size_t salen,
                      netguard_class_t *cls)
{
    netguard_class_t c = netguard_classify(sa, salen);
    if (cls) *cls = c;
    if (!g || !g->on || c == NETGUARD_PUBLIC) return true;
    if (c == NETGUARD_UNKNOWN) return false;
    for (size_t i = 0; i < g->n_allow; i++)
        if (netguard_cidr_match(&g->allow[i], sa, salen)) return true;
    return false;
}

void netguard_addr_str(const struct sockaddr *sa, size_t salen, char *buf, size_t len)
{
    unsigned char a[16];
    int family;
    if (!buf || len == 0) return;
    if (raw_addr(sa, salen, &family, a) < 0) {
        snprintf(buf, len, "(unknown address)");
        return;
    }
    char text[INET6_ADDRSTRLEN];
    const void *src = a;
    if (family == AF_INET6 && is_v4_mapped(a)) {
        family = AF_INET;
        src = a + 12;
    }
    if (!inet_ntop(family, src, text, sizeof text)) snprintf(text, sizeof text, "?");
    snprintf(buf, len, "%s", text);
}
