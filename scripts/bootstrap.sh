#!/usr/bin/env bash
# Installs whatever hasup needs that is missing, and nothing that is present.
# Safe to run any number of times; `npm run demo` and `npm test` call it first.
# Quiet and fast (well under 2 s) when everything is already there.
#
# Skips, for runs that need only part of it (the default installs everything):
#   HASUP_BOOTSTRAP_SKIP_SYSTEM=1  no Debian packages and no `hasup` user
#   HASUP_BOOTSTRAP_SKIP_ES=1      no Java, Maven or Elasticsearch distribution
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bootstrap: %s\n' "$*" >&2; }
# die WHAT [HINT...]: what failed, then what to do about it.
die() {
  printf 'bootstrap: ERROR: %s\n' "$1" >&2
  shift
  local hint
  for hint in "$@"; do printf 'bootstrap:   %s\n' "$hint" >&2; done
  exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }

# --- Node dependencies -------------------------------------------------------
# Reinstall when node_modules is missing or older than the lockfile.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error ||
    die "npm ci failed" "check that the npm registry is reachable and package-lock.json is valid"
fi

skip_system="${HASUP_BOOTSTRAP_SKIP_SYSTEM:-0}"
skip_es="${HASUP_BOOTSTRAP_SKIP_ES:-0}"

# --- Debian packages -----------------------------------------------------------
# What the children and the test harness run: PostgreSQL 15 server, etcd 3.4, HAProxy,
# nftables and iproute2 (network namespaces, partitions), procps (ps, sysctl), curl,
# arping (the leader VIP's gratuitous ARP, and duplicate-address checks in the VIP tests, docs/vip.md),
# pgBackRest 2.45 (WAL archiving and backups, docs/backup.md), Chromium (the console's
# browser tests drive /usr/bin/chromium through playwright-core, docs/console.md),
# tcpdump (the TLS cluster test captures the bridge's traffic, docs/tls.md).
# Java and Maven fetch and run the development Elasticsearch.
system_packages=(postgresql-15 gcc libc6-dev etcd-server etcd-client haproxy nftables iproute2 arping procps curl rsyslog rsyslog-elasticsearch pgbackrest chromium tcpdump)
es_packages=(openjdk-17-jre-headless maven)

wanted=()
[ "$skip_system" = 1 ] || wanted+=("${system_packages[@]}")
[ "$skip_es" = 1 ] || wanted+=("${es_packages[@]}")

# One dpkg-query for all: prints only the installed ones (unknown names go to stderr).
missing_packages() {
  local installed
  installed=" $( (dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true) |
    awk '$2 == "installed" { print $1 }' | tr '\n' ' ') "
  local p
  for p in "$@"; do
    case "$installed" in *" $p "*) ;; *) printf '%s\n' "$p" ;; esac
  done
}

# PIDs of the daemons a package's maintainer scripts would start, to tell them apart from
# instances that hasup, its tests, or anyone else runs: Debian's PostgreSQL cluster 15/main,
# etcd run as user `etcd`, HAProxy reading the packaged /etc/haproxy/haproxy.cfg.
packaged_daemon_pids() {
  command -v ps >/dev/null || return 0 # minimal images lack procps until we install it
  ps -eo pid=,user=,args= | awk '
    $3 ~ /(^|\/)etcd$/ && $2 == "etcd" { print $1; next }
    $3 ~ /(^|\/)haproxy$/ && index($0, "/etc/haproxy/haproxy.cfg") { print $1; next }
    $3 ~ /\/postgresql\/15\/bin\/postgres$/ && index($0, "/var/lib/postgresql/15/main") { print $1 }'
}

# Stops, by PID, packaged daemons that were not running before the install.
stop_daemons_started_by_install() {
  local before=" $1 " pid
  for pid in $(packaged_daemon_pids); do
    case "$before" in *" $pid "*) continue ;; esac
    log "stopping daemon pid $pid started by the package install: $(ps -o args= -p "$pid" | cut -c1-80)"
    kill -TERM "$pid" 2>/dev/null || true
  done
}

install_packages() {
  local -a pkgs=("$@")
  is_root || die "missing Debian packages: ${pkgs[*]}" \
    "run scripts/bootstrap.sh as root once (apt-get install needs root)," \
    "or set HASUP_BOOTSTRAP_SKIP_SYSTEM=1 HASUP_BOOTSTRAP_SKIP_ES=1 for unit-only runs"
  command -v apt-get >/dev/null || die "apt-get not found" "hasup's bootstrap supports Debian 12 (bookworm) only"

  log "installing Debian packages: ${pkgs[*]}"
  local daemons_before pg_preinstalled=0 policy_added=0
  daemons_before="$(packaged_daemon_pids | tr '\n' ' ')"
  [ -z "$(missing_packages postgresql-15)" ] && pg_preinstalled=1

  # hasup runs its own PostgreSQL, etcd and HAProxy instances: keep the packages'
  # maintainer scripts from starting their default daemons (invoke-rc.d honours this).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# temporary, from hasup scripts/bootstrap.sh: start no daemon during install\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi

  local apt_log
  apt_log="$(mktemp)"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg run (another bootstrap, say) instead of failing on its lock.
  local -a apt=(apt-get -q -y -o DPkg::Lock::Timeout=300)
  if ! "${apt[@]}" update >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log" >&2
    die "apt-get update failed (log: $apt_log)" "check that Debian's package mirrors are reachable"
  fi
  if ! "${apt[@]}" install --no-install-recommends "${pkgs[@]}" >>"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "apt-get install ${pkgs[*]} failed (log: $apt_log)" \
      "see the log above; 'apt-cache policy PACKAGE' shows whether a package is known here"
  fi
  rm -f "$apt_log"

  if [ "$policy_added" = 1 ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
  fi

  # The postgresql-15 package creates the cluster 15/main on first install. hasup never uses
  # it (it runs its own data directories), so drop the one this install just created.
  if [ "$pg_preinstalled" = 0 ] && [ -d /etc/postgresql/15/main ]; then
    log "dropping Debian's default PostgreSQL cluster 15/main (hasup runs its own)"
    pg_dropcluster --stop 15 main || die "pg_dropcluster --stop 15 main failed" \
      "inspect with pg_lsclusters; drop it by hand with: pg_dropcluster --stop 15 main"
  fi
  stop_daemons_started_by_install "$daemons_before"
}

# A pre-existing 15/main (from the machine image, say) is left in place, but must not
# start on boot or on `service postgresql start`: its start.conf goes from auto to manual.
disable_default_pg_cluster() {
  local start_conf=/etc/postgresql/15/main/start.conf
  [ -f "$start_conf" ] && grep -qx 'auto' "$start_conf" || return 0
  is_root || { log "warning: PostgreSQL cluster 15/main is set to auto-start; run bootstrap as root to disable it"; return 0; }
  log "disabling auto-start of Debian's PostgreSQL cluster 15/main ($start_conf: auto -> manual)"
  sed -i 's/^auto$/manual/' "$start_conf"
}

check_commands() {
  local c
  for c in "$@"; do
    [ -x "$c" ] || command -v "$c" >/dev/null ||
      die "$c is missing although its package is installed" \
        "reinstall the package that provides it (dpkg -S $c), then run bootstrap again"
  done
}

if [ ${#wanted[@]} -gt 0 ]; then
  mapfile -t to_install < <(missing_packages "${wanted[@]}")
  if [ ${#to_install[@]} -gt 0 ]; then
    install_packages "${to_install[@]}"
    # Check once, right after installing, that the binaries hasup execs are where it expects.
    [ "$skip_system" = 1 ] || check_commands /usr/lib/postgresql/15/bin/postgres \
      /usr/lib/postgresql/15/bin/pg_basebackup /usr/lib/postgresql/15/bin/pg_rewind \
      /usr/lib/postgresql/15/bin/initdb etcd etcdctl haproxy nft ip ps curl pgbackrest tcpdump
    [ "$skip_es" = 1 ] || check_commands java mvn
  fi
  [ "$skip_system" = 1 ] || disable_default_pg_cluster
fi

# --- Service user --------------------------------------------------------------
# Children run as `hasup`: PostgreSQL and Elasticsearch both refuse to run as root.
if [ "$skip_system" != 1 ] && ! getent passwd hasup >/dev/null; then
  is_root || die "system user 'hasup' is missing" "run scripts/bootstrap.sh as root once"
  log "creating system user hasup (home /var/lib/hasup, no login shell)"
  useradd --system --user-group --home-dir /var/lib/hasup --create-home \
    --shell /usr/sbin/nologin --comment 'hasup supervised services' hasup ||
    die "useradd hasup failed" "create it by hand: useradd --system --user-group --home-dir /var/lib/hasup --create-home --shell /usr/sbin/nologin hasup"
fi

# --- Elasticsearch (development and CI) ------------------------------------------
# A real Elasticsearch 8 distribution from Maven Central, unpacked into vendor/elasticsearch/home
# (git-ignored); see vendor-poms/elasticsearch/pom.xml for why this artifact. The marker holds
# the pom's checksum, so changing the pom (a version bump) fetches again.
if [ "$skip_es" != 1 ]; then
  es_pom=vendor-poms/elasticsearch/pom.xml
  es_dir=vendor/elasticsearch
  es_marker="$es_dir/.complete"
  es_want="$(sha256sum "$es_pom" | cut -d' ' -f1)"
  es_present() { [ -x "$es_dir/home/bin/elasticsearch" ] && [ "$(cat "$es_marker" 2>/dev/null)" = "$es_want" ]; }
  if ! es_present; then
    # Two bootstraps in one checkout (parallel test runs) must not unpack over each other:
    # the second waits for the first, then finds the distribution present.
    mkdir -p "$es_dir"
    exec 9>"$es_dir/.lock"
    flock 9
  fi
  if ! es_present; then
    command -v mvn >/dev/null || die "mvn not found" "apt-get install maven (or unset HASUP_BOOTSTRAP_SKIP_SYSTEM)"
    log "fetching Elasticsearch from Maven Central into $es_dir/home (about 90 MB, once)"
    rm -rf "$es_dir/home.partial" "$es_marker"
    mvn_log="$es_dir/fetch.log"
    # Unpack beside the old copy and swap at the end, so a failed fetch leaves no half tree.
    if ! mvn -q -B -f "$es_pom" dependency:unpack-dependencies \
      -Des.home.dir="$PWD/$es_dir/home.partial" >"$mvn_log" 2>&1; then
      # Maven's -q still prints colour resets; drop them and the blank lines.
      sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | grep -v '^\s*$' | grep -v 'Re-run Maven\|see the full stack\|^\[ERROR\] *$' | tail -n 15 >&2
      die "Maven could not fetch the Elasticsearch distribution (log: $mvn_log)" \
        "check that Maven Central is reachable (mvn -B dependency:get -Dartifact=junit:junit:4.13.2)," \
        "or set HASUP_BOOTSTRAP_SKIP_ES=1 for runs that do not need Elasticsearch"
    fi
    rm -f "$mvn_log"
    [ -x "$es_dir/home.partial/bin/elasticsearch" ] ||
      die "the unpacked distribution has no bin/elasticsearch" "inspect $es_dir/home.partial and $es_pom"
    rm -rf "${es_dir:?}/home"
    mv "$es_dir/home.partial" "$es_dir/home"
    printf '%s\n' "$es_want" >"$es_marker"
    # The node runs as `hasup`; it must be able to reach the distribution through the
    # checkout's parent folders (a clone under /root, mode 700, would not do).
    if is_root && getent passwd hasup >/dev/null &&
      ! setpriv --reuid=hasup --regid=hasup --init-groups test -r "$es_dir/home/lib/elasticsearch-core-"*.jar 2>/dev/null; then
      log "warning: user hasup cannot read $PWD/$es_dir/home; Elasticsearch will not start as hasup" \
        "(make the checkout's parent folders world-executable, or move the checkout)"
    fi
  fi
fi
