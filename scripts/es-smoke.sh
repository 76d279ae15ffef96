#!/usr/bin/env bash
# Proves the Elasticsearch development route end to end on this machine:
# start one real Elasticsearch 8 node (vendor/elasticsearch/home, fetched by bootstrap.sh)
# under BASE_DIR, wait for HTTP and green health, index a document, search it back,
# stop the node by PID with SIGTERM and check that it is gone. Exits non-zero on any failure.
#
# Usage: scripts/es-smoke.sh BASE_DIR
# Environment (all optional):
#   ES_SMOKE_ADDR            loopback address to bind          (default 127.0.0.1)
#   ES_SMOKE_HTTP_PORT       HTTP port                         (default 9201)
#   ES_SMOKE_TRANSPORT_PORT  transport port                    (default 9301)
#   ES_SMOKE_TIMEOUT         seconds to wait for green         (default 120)
#   ES_SMOKE_KEEP=1          keep the node's directory afterwards (default: removed on success)
#   HASUP_ES_HOME            Elasticsearch home                (default vendor/elasticsearch/home)
#   ES_JAVA_HOME             JDK 17+ to run it with             (default: the `java` on PATH)
#   HASUP_SERVICE_USER       user to run as when we are root   (default hasup)
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/.." && pwd)"

fail() { printf 'es-smoke: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'es-smoke: %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

[ $# -eq 1 ] || { echo "usage: $0 BASE_DIR" >&2; exit 2; }
base_dir="$1"

addr="${ES_SMOKE_ADDR:-127.0.0.1}"
http_port="${ES_SMOKE_HTTP_PORT:-9201}"
transport_port="${ES_SMOKE_TRANSPORT_PORT:-9301}"
timeout_s="${ES_SMOKE_TIMEOUT:-120}"
es_home="${HASUP_ES_HOME:-$repo_root/vendor/elasticsearch/home}"
service_user="${HASUP_SERVICE_USER:-hasup}"

case "$addr" in 127.*) ;; *) fail "ES_SMOKE_ADDR must be a 127.0.0.0/8 address, got '$addr'" ;; esac
[ -x "$es_home/bin/elasticsearch" ] ||
  fail "no Elasticsearch at $es_home (run scripts/bootstrap.sh, or set HASUP_ES_HOME)"
command -v curl >/dev/null || fail "curl is missing (apt-get install curl)"

# The distribution has no bundled JDK, so it must be told which one to use.
if [ -z "${ES_JAVA_HOME:-}" ]; then
  java_bin="$(command -v java)" || fail "no java on PATH and ES_JAVA_HOME unset (apt-get install openjdk-17-jre-headless)"
  ES_JAVA_HOME="$(dirname "$(dirname "$(readlink -f "$java_bin")")")"
fi

# Elasticsearch refuses to run as root ("can not run elasticsearch as root"), so as root we
# drop to the service user. setpriv keeps our resource limits; runuser would go through PAM
# and reset the open-files limit to 1024.
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  getent passwd "$service_user" >/dev/null ||
    fail "user '$service_user' does not exist (run scripts/bootstrap.sh)"
  run_as=(setpriv "--reuid=$service_user" "--regid=$service_user" --init-groups)
fi

port_in_use() { (exec 3<>"/dev/tcp/$addr/$1") 2>/dev/null; }
port_in_use "$http_port" && fail "$addr:$http_port is already in use (set ES_SMOKE_HTTP_PORT)"
port_in_use "$transport_port" && fail "$addr:$transport_port is already in use (set ES_SMOKE_TRANSPORT_PORT)"

mkdir -p "$base_dir"
node_dir="$(mktemp -d "$(cd "$base_dir" && pwd)/es-smoke.XXXXXX")"
mkdir -p "$node_dir"/{conf,data,logs,tmp}
cp "$es_home/config/log4j2.properties" "$node_dir/conf/"

# Everything the node needs is in its own config dir; nothing is written to ES_HOME.
# xpack.security.enabled must be set: left unset, the first start auto-generates TLS
# certificates and serves HTTPS only. Disk thresholds are off so a nearly full CI disk
# does not turn the index read-only.
cat >"$node_dir/conf/elasticsearch.yml" <<EOF
cluster.name: es-smoke
node.name: smoke-1
network.host: $addr
http.port: $http_port
transport.port: $transport_port
discovery.type: single-node
path.data: $node_dir/data
path.logs: $node_dir/logs
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
EOF
# Our own jvm.options replaces the distribution's, whose GC log and heap dump paths are
# relative to the working directory.
cat >"$node_dir/conf/jvm.options" <<'EOF'
-Xms256m
-Xmx512m
-XX:+UseG1GC
-Djava.io.tmpdir=${ES_TMPDIR}
-XX:+ExitOnOutOfMemoryError
-XX:-HeapDumpOnOutOfMemoryError
EOF
[ ${#run_as[@]} -eq 0 ] || chown -R "$service_user:" "$node_dir"

es_pid=""
es_exit=""
stop_node() {
  # SIGTERM to the launcher (the PID we started) stops the server JVM it forked, cleanly.
  [ -n "$es_pid" ] || return 0
  if kill -0 "$es_pid" 2>/dev/null; then
    kill -TERM "$es_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$es_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$es_pid" 2>/dev/null; then
      say "node did not stop within 30 s of SIGTERM; sending SIGKILL to its process group"
      kill -KILL -- "-$es_pid" 2>/dev/null || true
    fi
  fi
  es_exit=0
  wait "$es_pid" 2>/dev/null || es_exit=$?
  es_pid=""
}
on_exit() {
  local rc=$?
  stop_node
  if [ "$rc" -ne 0 ]; then
    say "node directory kept for inspection: $node_dir"
    if [ -f "$node_dir/stdout.log" ]; then
      say "last lines of $node_dir/stdout.log:"
      tail -n 25 "$node_dir/stdout.log" | cut -c1-300 >&2
    fi
  elif [ "${ES_SMOKE_KEEP:-0}" != 1 ]; then
    rm -rf "$node_dir"
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

http() { curl -sS -m 10 -H 'Content-Type: application/json' "$@"; }
url="http://$addr:$http_port"

t_start=$(now_ms)
# setsid: the node gets its own process group, as hasup's children do, so a SIGKILL
# fallback can reach the launcher and the server JVM together.
(
  cd "$node_dir"
  exec setsid "${run_as[@]}" env -i PATH=/usr/bin:/bin HOME="$node_dir" \
    ES_JAVA_HOME="$ES_JAVA_HOME" ES_PATH_CONF="$node_dir/conf" ES_TMPDIR="$node_dir/tmp" \
    "$es_home/bin/elasticsearch"
) >"$node_dir/stdout.log" 2>&1 </dev/null &
es_pid=$!
say "started pid $es_pid in $node_dir ($url)"

deadline=$(( $(date +%s) + timeout_s ))
until http -o /dev/null "$url/_cluster/health" 2>/dev/null; do
  kill -0 "$es_pid" 2>/dev/null || fail "Elasticsearch exited before serving HTTP"
  [ "$(date +%s)" -lt "$deadline" ] || fail "no HTTP answer on $url within ${timeout_s}s"
  sleep 0.25
done
t_http=$(now_ms)

until http "$url/_cluster/health?wait_for_status=green&timeout=5s" 2>/dev/null | grep -q '"status":"green"'; do
  kill -0 "$es_pid" 2>/dev/null || fail "Elasticsearch exited before turning green"
  [ "$(date +%s)" -lt "$deadline" ] || fail "cluster not green within ${timeout_s}s"
done
t_green=$(now_ms)

# GET / is served by the rest-root module, which this minimal distribution lacks (405);
# the local node's info carries the version instead.
version=$(http "$url/_nodes/_local?filter_path=nodes.*.version" | sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p')
[ -n "$version" ] || fail "GET /_nodes/_local did not report a version"

index="es-smoke"
marker="smoke-$$-$RANDOM"
http -X PUT "$url/$index" -d '{"settings":{"number_of_shards":1,"number_of_replicas":0}}' |
  grep -q '"acknowledged":true' || fail "could not create index $index"
put_reply=$(http -X PUT "$url/$index/_doc/1?refresh=wait_for" \
  -d "{\"message\":\"hasup smoke $marker\",\"@timestamp\":\"2024-01-01T00:00:00Z\"}")
printf '%s' "$put_reply" | grep -q '"result":"created"' || fail "indexing failed: $put_reply"
search_reply=$(http "$url/$index/_search" -d "{\"query\":{\"match\":{\"message\":\"$marker\"}}}")
printf '%s' "$search_reply" | grep -q '"total":{"value":1,' || fail "search did not find the document: $search_reply"
printf '%s' "$search_reply" | grep -q "$marker" || fail "search hit lacks the document body: $search_reply"
t_searched=$(now_ms)

# RSS of the launcher and of the server JVM it forked, in MiB.
rss_of() { ps -o rss= -p "$1" 2>/dev/null | awk '{printf "%d", $1/1024}'; }
server_pid=$(ps -o pid= --ppid "$es_pid" | awk 'NR==1{print $1}')
rss_launcher=$(rss_of "$es_pid")
rss_server=$( [ -n "$server_pid" ] && rss_of "$server_pid" || echo '?')

t_stop=$(now_ms)
stop_node
t_stopped=$(now_ms)
port_in_use "$http_port" && fail "HTTP port $http_port still open after stop"
[ -z "$server_pid" ] || ! kill -0 "$server_pid" 2>/dev/null || fail "server JVM $server_pid survived SIGTERM"
grep -q 'closed' "$node_dir/logs/es-smoke.log" || fail "no clean shutdown ('closed') in the node's log"

say "OK: Elasticsearch $version"
say "  http after    $(( t_http - t_start )) ms"
say "  green after   $(( t_green - t_start )) ms"
say "  index+search  $(( t_searched - t_green )) ms"
say "  RSS launcher  ${rss_launcher} MiB, server ${rss_server} MiB"
say "  stop (TERM)   $(( t_stopped - t_stop )) ms, launcher exit status $es_exit"
