/*
 * hasup-fence: guards a PostgreSQL primary while its supervisor may stall.
 *
 * The supervisor (hasup) starts one fence per member and keeps its stdin
 * open. While the member leads, hasup arms the fence after every confirmed
 * lease renewal with three CLOCK_MONOTONIC instants: when to freeze
 * PostgreSQL if no later arm came, when to kill it, and the earliest moment
 * the lease could expire in etcd. The fence needs nothing from hasup to act:
 *
 *   - the freeze instant passes without a new arm (renewals overdue: hasup
 *     stopped, stalled, its event loop blocked, or etcd slow to answer):
 *     every PostgreSQL process is stopped (SIGSTOP), so nothing more is
 *     committed or acknowledged, but nothing is lost either: an arm that
 *     comes later (a renewal was confirmed after all, so the lease still
 *     stands) thaws it (SIGCONT) and the primary goes on where it stopped;
 *   - the kill instant passes without a new arm: PostgreSQL is killed;
 *   - stdin reaches end of file while armed (hasup crashed or was killed),
 *     or hasup disarms a frozen fence: PostgreSQL is killed at once (a
 *     frozen primary is never left for anyone to thaw), and on end of file
 *     the fence exits;
 *   - stdin reaches end of file while disarmed: the fence exits quietly.
 *
 * Freezing rather than killing at the first deadline is what lets a leader
 * ride out a few seconds in which etcd cannot answer (its own leader
 * election under packet loss): etcd gives every lease a whole ttl again
 * when it elects a leader, so the renewal that finally comes through is
 * valid and the primary resumes without a failover. Safety is the same as
 * a kill at that instant: a stopped process acknowledges nothing.
 *
 * Freezing PostgreSQL: the postmaster is stopped first (it forks nothing
 * more), then every other backend; the walsenders last, after the same
 * grace as below, so the standbys receive the WAL already flushed.
 *
 * Killing PostgreSQL: the postmaster (from postmaster.pid) is stopped with
 * SIGSTOP so it forks nothing more; every backend but the walsenders is
 * killed at once; the walsenders get a short grace to hand the WAL already
 * flushed (and so possibly acknowledged) to the standbys; then they and the
 * postmaster are killed, and the cgroup the postmaster runs in, when one is
 * given, is killed whole (cgroup.kill) so no process can escape.
 *
 * The leader VIP (docs/vip.md), when hasup gives it: removed from its
 * interface over netlink whenever the fence freezes or kills PostgreSQL,
 * before the processes are signalled, so a stalled or dead supervisor
 * cannot leave the address on this host past the freeze instant, a
 * retry_timeout before the lease can expire and another member add it.
 *
 * Optional kernel watchdog: while armed, the fence feeds the device only as
 * long as a reboot after one more timeout would still come before the lease
 * can expire; it closes it with the magic 'V' once PostgreSQL is known
 * frozen or dead, or the member stops leading. If the fence itself stops (the whole machine
 * stalls), the kernel reboots it before anyone else can take the lease.
 *
 * Written in C rather than TypeScript: it must keep working when the Node.js
 * process is what stalls, and it is tiny (about 1 MB RSS, where a second Node
 * process idles at about 40 MB).
 *
 * Protocol (one line each way):
 *   arm <freeze_ns> <kill_ns> <expiry_ns> -> armed watchdog=active|failed|off
 *   disarm                          -> disarmed (killing PostgreSQL first if frozen)
 *   kill                            -> killed (PostgreSQL killed now if armed)
 *   ping                            -> pong armed|frozen|disarmed
 *   vip <addr>/<prefix> <ifname>    -> vip on (removed when the fence acts)
 *   vip off                         -> vip off
 * and, unasked, after acting:       -> frozen <stopped>
 *                                   -> fenced <cause> <killed> <survivors>
 * Malformed lines are answered with "error <reason>" and change nothing.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/watchdog.h>

#define MAX_PIDS 4096
#define LINE_MAX_LEN 256

static const char *pidfile_path;
static const char *cgroup_dir;
static const char *record_path;
static const char *watchdog_path;
static int watchdog_timeout_s = 1;
static int64_t grace_ns = 100 * 1000000LL;

static int armed;
/* PostgreSQL's processes are stopped (SIGSTOP) by this fence and not yet thawed or killed. */
static int frozen;
/* A thaw is due at the next valid arm: after a freeze, and at start (a predecessor may have frozen it). */
static int thaw_due = 1;
static int64_t freeze_ns;
static int64_t kill_ns;
static int64_t expiry_ns;
static int wd_fd = -1;

/* The leader VIP to remove when the fence acts, if any. */
static int vip_family; /* 0: none */
static unsigned char vip_addr[16];
static int vip_prefix;
static char vip_ifname[IF_NAMESIZE];
static char vip_text[64];

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void logf_(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "hasup-fence: %s\n", buf);
  fflush(stderr);
}

static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

static void sleep_ns(int64_t ns) {
  if (ns <= 0) return;
  struct timespec ts = {ns / 1000000000LL, ns % 1000000000LL};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- kernel watchdog ------------------------------------------------------ */

static void watchdog_open(void) {
  if (!watchdog_path || wd_fd >= 0) return;
  wd_fd = open(watchdog_path, O_WRONLY | O_CLOEXEC);
  if (wd_fd < 0) {
    logf_("cannot open watchdog %s: %s", watchdog_path, strerror(errno));
    return;
  }
  int t = watchdog_timeout_s;
  /* A fake device (a plain file, in tests) has no ioctls: keepalives are plain writes. */
  if (ioctl(wd_fd, WDIOC_SETTIMEOUT, &t) != 0 && errno != ENOTTY) logf_("watchdog %s: cannot set the timeout: %s", watchdog_path, strerror(errno));
}

static void watchdog_feed(void) {
  if (wd_fd < 0) return;
  if (write(wd_fd, "1", 1) != 1) logf_("watchdog keepalive failed: %s", strerror(errno));
}

/* The magic close: the kernel stops the timer instead of rebooting. */
static void watchdog_close(void) {
  if (wd_fd < 0) return;
  if (write(wd_fd, "V", 1) != 1) logf_("watchdog magic close failed: %s", strerror(errno));
  close(wd_fd);
  wd_fd = -1;
}

/* ---- the leader VIP ---------------------------------------------------------- */

static void nl_attr(struct nlmsghdr *n, int type, const void *data, size_t len) {
  struct rtattr *rta = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
  rta->rta_type = (unsigned short)type;
  rta->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(rta), data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/*
 * Removes the VIP from its interface: one RTM_DELADDR over netlink, what
 * `ip addr del` sends, without starting a process. An address already gone
 * (EADDRNOTAVAIL) is fine: this member was not holding it.
 */
static void vip_remove(const char *why) {
  if (!vip_family) return;
  unsigned ifindex = if_nametoindex(vip_ifname);
  if (!ifindex) {
    logf_("cannot remove the leader VIP %s: no interface %s", vip_text, vip_ifname);
    return;
  }
  struct {
    struct nlmsghdr n;
    struct ifaddrmsg ifa;
    char attrs[64];
  } req;
  memset(&req, 0, sizeof req);
  req.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  req.n.nlmsg_type = RTM_DELADDR;
  req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.n.nlmsg_seq = 1;
  req.ifa.ifa_family = (unsigned char)vip_family;
  req.ifa.ifa_prefixlen = (unsigned char)vip_prefix;
  req.ifa.ifa_index = ifindex;
  size_t alen = vip_family == AF_INET ? 4 : 16;
  nl_attr(&req.n, IFA_LOCAL, vip_addr, alen);
  nl_attr(&req.n, IFA_ADDRESS, vip_addr, alen);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    logf_("cannot remove the leader VIP %s: netlink socket: %s", vip_text, strerror(errno));
    return;
  }
  struct timeval tv = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int err = -1;
  if (sendto(fd, &req, req.n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) >= 0) {
    char answer[512];
    ssize_t n = recv(fd, answer, sizeof answer, 0);
    struct nlmsghdr *h = (struct nlmsghdr *)answer;
    if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR) err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
    else err = errno ? errno : EIO;
  } else {
    err = errno;
  }
  close(fd);
  if (err == 0) logf_("removed the leader VIP %s from %s (%s)", vip_text, vip_ifname, why);
  else if (err != EADDRNOTAVAIL) logf_("cannot remove the leader VIP %s from %s: %s", vip_text, vip_ifname, strerror(err));
}

/* "ADDR/PREFIX IFNAME": 1 when valid (and then in force), 0 when not (nothing changes). */
static int vip_parse(const char *spec) {
  char addr[48], ifname[IF_NAMESIZE + 1], extra;
  int prefix;
  if (sscanf(spec, "%47[^/]/%d %16s %c", addr, &prefix, ifname, &extra) != 3 || strlen(ifname) >= IF_NAMESIZE) return 0;
  unsigned char bytes[16];
  int family = inet_pton(AF_INET, addr, bytes) == 1 ? AF_INET : inet_pton(AF_INET6, addr, bytes) == 1 ? AF_INET6 : 0;
  if (!family || prefix < 0 || prefix > (family == AF_INET ? 32 : 128)) return 0;
  vip_family = family;
  memcpy(vip_addr, bytes, sizeof bytes);
  vip_prefix = prefix;
  snprintf(vip_ifname, sizeof vip_ifname, "%s", ifname);
  snprintf(vip_text, sizeof vip_text, "%s/%d", addr, prefix);
  return 1;
}

/* ---- finding PostgreSQL's processes --------------------------------------- */

/* /proc/PID/NAME into buf (NUL-terminated); its length, or 0 when unreadable or empty. */
static ssize_t read_proc(int pid, const char *name, char *buf, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", pid, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  return n;
}

/* Field 4 (ppid) and the command name of /proc/PID/stat; 0 when unreadable. */
static int read_stat(int pid, int *ppid, char *comm, size_t commlen, char *state) {
  char buf[1024];
  if (read_proc(pid, "stat", buf, sizeof buf) == 0) return 0;
  char *open_paren = strchr(buf, '(');
  char *close_paren = strrchr(buf, ')');
  if (!open_paren || !close_paren || close_paren < open_paren) return 0;
  size_t len = (size_t)(close_paren - open_paren - 1);
  if (len >= commlen) len = commlen - 1;
  memcpy(comm, open_paren + 1, len);
  comm[len] = 0;
  char st;
  int pp;
  if (sscanf(close_paren + 2, "%c %d", &st, &pp) != 2) return 0;
  *ppid = pp;
  *state = st;
  return 1;
}

static int is_alive(int pid) {
  int ppid;
  char comm[64], st;
  if (!read_stat(pid, &ppid, comm, sizeof comm, &st)) return 0;
  return st != 'Z' && st != 'X';
}

/* A walsender's process title reads "postgres: walsender ...". */
static int is_walsender(int pid) {
  char buf[256];
  ssize_t n = read_proc(pid, "cmdline", buf, sizeof buf);
  for (ssize_t i = 0; i < n; i++)
    if (buf[i] == 0) buf[i] = ' ';
  return strstr(buf, "walsender") != NULL;
}

/* The postmaster's pid from the first line of postmaster.pid, if that process is a live postgres. */
static int postmaster_pid(void) {
  if (!pidfile_path) return 0;
  FILE *f = fopen(pidfile_path, "re");
  if (!f) return 0;
  int pid = 0;
  if (fscanf(f, "%d", &pid) != 1) pid = 0;
  fclose(f);
  if (pid <= 1) return 0;
  int ppid;
  char comm[64], st;
  if (!read_stat(pid, &ppid, comm, sizeof comm, &st) || st == 'Z') return 0;
  /* A pid reused by something else after PostgreSQL died must never be signalled. */
  if (strncmp(comm, "postgres", 8) != 0) return 0;
  return pid;
}

static int children_of(int parent, int *out, int max) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    if (!isdigit((unsigned char)e->d_name[0])) continue;
    int pid = atoi(e->d_name), ppid;
    char comm[64], st;
    if (read_stat(pid, &ppid, comm, sizeof comm, &st) && ppid == parent && st != 'Z') out[n++] = pid;
  }
  closedir(d);
  return n;
}

static int cgroup_pids(int *out, int max) {
  if (!cgroup_dir) return 0;
  char path[512];
  snprintf(path, sizeof path, "%s/cgroup.procs", cgroup_dir);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  int n = 0, pid;
  while (n < max && fscanf(f, "%d", &pid) == 1)
    if (is_alive(pid)) out[n++] = pid;
  fclose(f);
  return n;
}

static int cgroup_kill(void) {
  if (!cgroup_dir) return 0;
  char path[512];
  snprintf(path, sizeof path, "%s/cgroup.kill", cgroup_dir);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok;
}

/* ---- fencing -------------------------------------------------------------- */

static void record(const char *cause, int pm, int killed, int survivors, int used_cgroup) {
  if (!record_path) return;
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", record_path);
  FILE *f = fopen(tmp, "we");
  if (!f) return;
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  fprintf(f, "{\"at_ms\":%lld,\"cause\":\"%s\",\"postmaster\":%d,\"killed\":%d,\"survivors\":%d,\"cgroup\":%s}\n",
          (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000, cause, pm, killed, survivors, used_cgroup ? "true" : "false");
  fflush(f);
  fsync(fileno(f));
  fclose(f);
  rename(tmp, record_path);
}

/* Sends `sig` to every process of PostgreSQL: the postmaster, its children, the cgroup's. Returns how many. */
static int signal_all(int pm, int sig, int skip_walsenders) {
  static int pids[MAX_PIDS];
  int sent = 0;
  if (pm) {
    int n = children_of(pm, pids, MAX_PIDS);
    for (int i = 0; i < n; i++) {
      if (skip_walsenders && is_walsender(pids[i])) continue;
      if (kill(pids[i], sig) == 0) sent++;
    }
  }
  int n = cgroup_pids(pids, MAX_PIDS);
  for (int i = 0; i < n; i++) {
    if (pids[i] == pm || (skip_walsenders && is_walsender(pids[i]))) continue;
    if (kill(pids[i], sig) == 0) sent++;
  }
  return sent;
}

static void freeze(void) {
  vip_remove("renewals overdue");
  int pm = postmaster_pid(), stopped = 0;
  if (pm && kill(pm, SIGSTOP) == 0) stopped++;
  stopped += signal_all(pm, SIGSTOP, 1);
  /* The WAL already flushed (and so maybe acknowledged) may still be on its way to a standby. */
  sleep_ns(grace_ns);
  signal_all(pm, SIGSTOP, 0);
  frozen = 1;
  thaw_due = 1;
  watchdog_close(); /* a stopped PostgreSQL takes no writes: no reason left to reboot */
  logf_("froze PostgreSQL (renewals overdue): postmaster %d, %d processes stopped", pm, stopped);
  reply("frozen %d", stopped);
}

/* An arm means a confirmed renewal: the lease stands, a frozen PostgreSQL may go on. */
static void thaw(void) {
  int pm = postmaster_pid();
  int resumed = signal_all(pm, SIGCONT, 0);
  if (pm && kill(pm, SIGCONT) == 0) resumed++;
  if (frozen) logf_("thawed PostgreSQL (a renewal was confirmed): %d processes resumed", resumed);
  frozen = 0;
  thaw_due = 0;
}

static void fence(const char *cause) {
  int64_t started = now_ns();
  vip_remove(cause);
  static int pids[MAX_PIDS];
  int pm = postmaster_pid(), killed = 0;
  if (pm) {
    kill(pm, SIGSTOP);
    int n = children_of(pm, pids, MAX_PIDS), walsenders = 0;
    for (int i = 0; i < n; i++) {
      if (is_walsender(pids[i])) {
        walsenders++;
        continue;
      }
      if (kill(pids[i], SIGKILL) == 0) killed++;
    }
    /* Whatever was flushed (and so maybe acknowledged) may still be on its way to a standby (not when frozen: it was given its grace then). */
    if (walsenders > 0 && !frozen) sleep_ns(grace_ns);
    n = children_of(pm, pids, MAX_PIDS);
    for (int i = 0; i < n; i++)
      if (kill(pids[i], SIGKILL) == 0) killed++;
    if (kill(pm, SIGKILL) == 0) killed++;
  }
  int used_cgroup = cgroup_kill();
  /* Wait (briefly) until nothing is left: the kernel needs a moment to tear processes down. */
  int survivors = 0;
  for (int tries = 0; tries < 100; tries++) {
    survivors = cgroup_pids(pids, MAX_PIDS);
    if (pm && is_alive(pm)) survivors++;
    if (survivors == 0) break;
    sleep_ns(10 * 1000000LL);
  }
  armed = 0;
  frozen = 0;
  if (survivors == 0) watchdog_close(); /* PostgreSQL is gone: no reason left to reboot */
  record(cause, pm, killed, survivors, used_cgroup);
  logf_("fenced (%s): postmaster %d, %d processes killed, %d left, cgroup %s, took %lld ms", cause, pm, killed, survivors,
        used_cgroup ? "killed" : "not used", (long long)((now_ns() - started) / 1000000));
  reply("fenced %s %d %d", cause, killed, survivors);
}

/* ---- commands ------------------------------------------------------------- */

static void command(char *line) {
  long long f, k, x;
  char extra;
  if (sscanf(line, "arm %lld %lld %lld %c", &f, &k, &x, &extra) == 3 && f > 0 && k >= f && x > 0) {
    freeze_ns = f;
    kill_ns = k;
    expiry_ns = x;
    armed = 1;
    /* Also after a restart of this fence: a PostgreSQL its predecessor froze is thawed by a valid arm. */
    if (thaw_due && now_ns() < freeze_ns) thaw();
    watchdog_open();
    reply("armed watchdog=%s", !watchdog_path ? "off" : wd_fd >= 0 ? "active" : "failed");
  } else if (strcmp(line, "disarm") == 0) {
    if (frozen) fence("disarmed-frozen");
    armed = 0;
    watchdog_close();
    reply("disarmed");
  } else if (strcmp(line, "kill") == 0) {
    if (armed || frozen) fence("supervisor");
    reply("killed");
  } else if (strcmp(line, "vip off") == 0) {
    vip_family = 0;
    reply("vip off");
  } else if (strncmp(line, "vip ", 4) == 0 && vip_parse(line + 4)) {
    reply("vip on");
  } else if (strcmp(line, "ping") == 0) {
    reply("pong %s", frozen ? "frozen" : armed ? "armed" : "disarmed");
  } else {
    reply("error unknown or malformed command");
  }
}

static void usage(void) {
  fprintf(stderr,
          "usage: hasup-fence --pidfile PATH [--cgroup DIR] [--record FILE] [--grace-ms N]\n"
          "                   [--watchdog DEVICE --watchdog-timeout SECONDS]\n");
  exit(2);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    if (strcmp(a, "--pidfile") == 0) pidfile_path = v;
    else if (strcmp(a, "--cgroup") == 0) cgroup_dir = v;
    else if (strcmp(a, "--record") == 0) record_path = v;
    else if (strcmp(a, "--watchdog") == 0) watchdog_path = v;
    else if (strcmp(a, "--watchdog-timeout") == 0) watchdog_timeout_s = atoi(v);
    else if (strcmp(a, "--grace-ms") == 0) grace_ns = atoll(v) * 1000000LL;
    else usage();
    i++;
  }
  if (!pidfile_path || watchdog_timeout_s < 1 || grace_ns < 0) usage();
  signal(SIGPIPE, SIG_IGN); /* a reply to a dead supervisor must not kill the fence */
  /* SIGTERM from the supervisor's process group must not take the fence along. */
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  char buf[LINE_MAX_LEN * 4];
  size_t used = 0;
  for (;;) {
    int timeout_ms = -1;
    int64_t now = now_ns();
    if (armed) {
      if (now >= kill_ns) {
        fence("deadline");
        continue;
      }
      if (!frozen && now >= freeze_ns) {
        freeze();
        continue;
      }
      /* Feed the kernel watchdog only while its reboot would still beat the lease's expiry. */
      if (wd_fd >= 0 && now + (int64_t)watchdog_timeout_s * 1000000000LL < expiry_ns) watchdog_feed();
      int64_t wait = (frozen ? kill_ns : freeze_ns) - now;
      if (wd_fd >= 0 && wait > 100000000LL) wait = 100000000LL;
      timeout_ms = (int)((wait + 999999) / 1000000);
    }
    struct pollfd p = {0, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      logf_("poll: %s", strerror(errno));
      if (armed || frozen) fence("fence-error");
      return 1;
    }
    if (r == 0) continue;
    ssize_t n = read(0, buf + used, sizeof buf - used);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      if (armed || frozen) fence("supervisor-gone");
      else watchdog_close();
      return 0;
    }
    used += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', used - (size_t)(start - buf)))) {
      *nl = 0;
      if (nl - start < LINE_MAX_LEN) command(start);
      else reply("error line too long");
      start = nl + 1;
    }
    used -= (size_t)(start - buf);
    memmove(buf, start, used);
    if (used == sizeof buf) {
      reply("error line too long");
      used = 0;
    }
  }
}
