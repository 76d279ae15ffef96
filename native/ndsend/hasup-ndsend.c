/*
 * hasup-ndsend: unsolicited IPv6 neighbour advertisements for the leader VIP.
 *
 *   hasup-ndsend -i IFACE [-c COUNT] [-w INTERVAL_MS] ADDRESS
 *
 * What arping -U does for an IPv4 VIP, for an IPv6 one (RFC 4861 section
 * 7.2.6): COUNT advertisements to all-nodes (ff02::1), from ADDRESS, for
 * ADDRESS as target, with the override flag and the interface's link-layer
 * address, so every neighbour that has ADDRESS in its cache points it at
 * this host at once instead of waiting for its entry to go stale.
 *
 * Why a program of our own: Debian's base has no tool that sends one (ndisc6
 * only solicits), and the kernel sends one only after duplicate address
 * detection, which the VIP skips (nodad) so it is usable at once. Node has no
 * raw sockets. The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
 *
 * Needs CAP_NET_RAW. ADDRESS must already be on IFACE. Exit 0 when every
 * advertisement was sent; 2 on bad arguments; 1 on any other failure, with
 * the reason on stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int usage(const char *why) {
  fprintf(stderr, "hasup-ndsend: %s\nusage: hasup-ndsend -i IFACE [-c COUNT] [-w INTERVAL_MS] ADDRESS\n", why);
  return 2;
}

static int fail(const char *what) {
  fprintf(stderr, "hasup-ndsend: %s: %s\n", what, strerror(errno));
  return 1;
}

static long number(const char *text, long min, long max) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) return -1;
  return v;
}

int main(int argc, char **argv) {
  const char *ifname = NULL;
  long count = 3, interval_ms = 200;
  int opt;
  while ((opt = getopt(argc, argv, "i:c:w:")) != -1) {
    switch (opt) {
      case 'i': ifname = optarg; break;
      case 'c': if ((count = number(optarg, 1, 100)) < 0) return usage("-c takes a count from 1 to 100"); break;
      case 'w': if ((interval_ms = number(optarg, 0, 10000)) < 0) return usage("-w takes milliseconds from 0 to 10000"); break;
      default: return usage("unknown option");
    }
  }
  if (!ifname || optind != argc - 1) return usage("an interface (-i) and one address are required");
  if (strlen(ifname) >= IFNAMSIZ) return usage("interface name too long");
  struct in6_addr target;
  if (inet_pton(AF_INET6, argv[optind], &target) != 1) return usage("the address is not an IPv6 address");
  unsigned int ifindex = if_nametoindex(ifname);
  if (ifindex == 0) {
    fprintf(stderr, "hasup-ndsend: there is no network interface %s on this host\n", ifname);
    return 1;
  }

  /* The interface's MAC, for the target link-layer address option. */
  int ioctl_fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (ioctl_fd < 0) return fail("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, strlen(ifname));
  if (ioctl(ioctl_fd, SIOCGIFHWADDR, &ifr) < 0) return fail("reading the interface's link-layer address");
  close(ioctl_fd);

  int fd = socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6);
  if (fd < 0) return fail("raw ICMPv6 socket (needs CAP_NET_RAW)");
  /* Neighbour discovery messages carry hop limit 255, or receivers drop them. */
  int hops = 255;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) < 0) return fail("IPV6_MULTICAST_HOPS");
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) < 0) return fail("IPV6_MULTICAST_IF");
  /* Source address ADDRESS: the kernel refuses it unless it is on the interface. */
  struct sockaddr_in6 src;
  memset(&src, 0, sizeof src);
  src.sin6_family = AF_INET6;
  src.sin6_addr = target;
  if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) return fail("binding the address (is it on the interface?)");

  struct {
    struct nd_neighbor_advert na;
    struct nd_opt_hdr opt;
    uint8_t mac[6];
  } __attribute__((packed)) msg;
  memset(&msg, 0, sizeof msg);
  msg.na.nd_na_type = ND_NEIGHBOR_ADVERT;
  msg.na.nd_na_code = 0;
  msg.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE; /* not solicited, not a router */
  msg.na.nd_na_target = target;
  msg.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
  msg.opt.nd_opt_len = 1; /* in units of 8 octets: type, length and a 6-byte MAC */
  memcpy(msg.mac, ifr.ifr_hwaddr.sa_data, 6);

  struct sockaddr_in6 dst;
  memset(&dst, 0, sizeof dst);
  dst.sin6_family = AF_INET6;
  dst.sin6_scope_id = ifindex;
  inet_pton(AF_INET6, "ff02::1", &dst.sin6_addr);

  for (long i = 0; i < count; i++) {
    if (i > 0 && interval_ms > 0) {
      struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
      while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    }
    if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&dst, sizeof dst) != (ssize_t)sizeof msg) return fail("sending the advertisement");
  }
  close(fd);
  return 0;
}
