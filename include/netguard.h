/* netguard: the SSRF guard's address rules. Classifies IPv4/IPv6 addresses
 * (loopback, private, link-local, multicast, unspecified, CGNAT, "this network",
 * reserved; IPv4-mapped, -compatible and NAT64 IPv6 forms count as their IPv4 address),
 * parses and matches CIDRs, and decides whether a connection to an address is allowed
 * under processor.block_private_networks + processor.allow_cidrs. Pure functions apart
 * from netguard_socket, the checkpoint that fetch (downloads) and backend_http
 * (callbacks) install as curl's open-socket callback, with the address curl is about
 * to connect to. */
#ifndef DOWNLOADER_NETGUARD_H
#define DOWNLOADER_NETGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef enum {
    NETGUARD_PUBLIC = 0,
    NETGUARD_LOOPBACK,     /* 127.0.0.0/8, ::1 */
    NETGUARD_PRIVATE,      /* 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 */
    NETGUARD_LINK_LOCAL,   /* 169.254/16, fe80::/10 */
    NETGUARD_MULTICAST,    /* 224/4, ff00::/8 */
    NETGUARD_UNSPECIFIED,  /* 0.0.0.0, :: */
    NETGUARD_CGNAT,        /* 100.64/10 */
    NETGUARD_THIS_NETWORK, /* 0.0.0.0/8 (other than 0.0.0.0) */
    NETGUARD_RESERVED,     /* 240/4 incl. 255.255.255.255 */
    NETGUARD_UNKNOWN,      /* not an IPv4/IPv6 address (always refused when on) */
} netguard_class_t;

/* A parsed CIDR. IPv4 ones (and IPv6 ones inside ::ffff:0:0/96) are stored as IPv4. */
typedef struct {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address (host bits cleared); 4 bytes for IPv4 */
    unsigned prefix;        /* 0..32 or 0..128 */
} netguard_cidr_t;

/* The guard as configured. */
typedef struct {
    bool on;
    netguard_cidr_t *allow;
    size_t n_allow;
} netguard_t;

/* Classifies a raw address: family AF_INET with 4 bytes or AF_INET6 with 16 bytes. */
netguard_class_t netguard_classify_raw(int family, const unsigned char *addr);

/* Classifies a socket address (sockaddr_in / sockaddr_in6; anything else: UNKNOWN). */
netguard_class_t netguard_classify(const struct sockaddr *sa, size_t salen);

/* Short name of a class ("loopback", "private", "link-local", ...). */
const char *netguard_class_name(netguard_class_t c);

/* Parses "a.b.c.d/n", "v6addr/n" or a bare address (a single host). Host bits may be
 * set (they are cleared, as Go's net.ParseCIDR does). 0, or -1 when invalid. */
int netguard_cidr_parse(const char *text, netguard_cidr_t *out);

/* True when the socket address lies inside the CIDR (IPv4-mapped IPv6 addresses
 * match IPv4 CIDRs). */
bool netguard_cidr_match(const netguard_cidr_t *c, const struct sockaddr *sa, size_t salen);

/* Builds a guard; on = false makes every address allowed. Invalid CIDRs make it fail
 * with `entry "<text>" is not a valid CIDR` in err. 0, or -1 (err set or out of
 * memory). Free with netguard_free. */
int netguard_init(netguard_t *g, bool on, const char *const *cidrs, size_t n, char *err,
                  size_t errlen);
void netguard_free(netguard_t *g);

/* The guard as configured, failing closed: when the allow list cannot be built it is
 * dropped and the guard stays on. */
void netguard_setup(netguard_t *g, bool on, const char *const *cidrs, size_t n);

/* Why a connection was refused, after "refused to connect to <address>: ". */
#define NETGUARD_REFUSED_WHY "private or loopback address (processor.block_private_networks)"

/* The open-socket checkpoint: a new socket(family, socktype | SOCK_CLOEXEC, protocol)
 * for a connection to sa when the guard allows it; -2 when it refuses (refused gets the
 * address as text, *cls its class), -1 when socket() fails. */
int netguard_socket(const netguard_t *g, int family, int socktype, int protocol,
                    const struct sockaddr *sa, size_t salen, netguard_class_t *cls, char *refused,
                    size_t len);

/* May a connection go to this address? Allowed when the guard is off, the address is
 * public, or it lies inside an allowed CIDR. *cls (may be NULL) gets its class. */
bool netguard_allowed(const netguard_t *g, const struct sockaddr *sa, size_t salen,
                      netguard_class_t *cls);

/* The address as text: "127.0.0.1", "::1"; IPv4-mapped IPv6 as its IPv4 form. */
void netguard_addr_str(const struct sockaddr *sa, size_t salen, char *buf, size_t len);

#endif
