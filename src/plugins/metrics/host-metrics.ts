/**
 * Prometheus gauges for what the metric collector samples and what the
 * shipper does, in a registry of their own that /metrics appends to the
 * API's (ApiMetrics.addRegistry). The values are the collector's last
 * sample: Prometheus and Elasticsearch see the same numbers.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import { numberAt, stringAt, type Sample } from '../metrics-collector/sample.js';
import type { ShipperStats } from '../shipper/shipper.js';

export class HostMetrics {
  readonly registry = new Registry();
  private sample: Sample | undefined;

  constructor(shipperStats?: () => ShipperStats | undefined) {
    const registers = [this.registry];
    const sets = (module: string, metricset: string) => (this.sample?.sets ?? []).filter((s) => s.module === module && s.metricset === metricset);
    const first = (module: string, metricset: string) => sets(module, metricset)[0]?.fields;
    const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill(this);
        },
      });
    const setIf = (g: Gauge, labels: Record<string, string>, v: number | undefined) => {
      if (v !== undefined) g.set(labels, v);
    };

    gauge('hasup_host_cpu_ratio', 'Host CPU in use, share of all cores (system.cpu.total.norm.pct)', ['mode'], (g) => {
      const f = first('system', 'cpu');
      if (!f) return;
      for (const mode of ['total', 'user', 'system', 'idle', 'steal']) setIf(g, { mode }, numberAt(f, `system.cpu.${mode}.norm.pct`));
    });
    gauge('hasup_host_load', 'Load average (system.load)', ['period'], (g) => {
      const f = first('system', 'load');
      if (f) for (const period of ['1', '5', '15']) setIf(g, { period }, numberAt(f, `system.load.${period}`));
    });
    gauge('hasup_host_memory_bytes', 'Host memory (system.memory): total, used, actual_used (without caches), swap_used', ['kind'], (g) => {
      const f = first('system', 'memory');
      if (!f) return;
      setIf(g, { kind: 'total' }, numberAt(f, 'system.memory.total'));
      setIf(g, { kind: 'used' }, numberAt(f, 'system.memory.used.bytes'));
      setIf(g, { kind: 'actual_used' }, numberAt(f, 'system.memory.actual.used.bytes'));
      setIf(g, { kind: 'swap_used' }, numberAt(f, 'system.memory.swap.used.bytes'));
    });
    gauge('hasup_host_memory_actual_used_ratio', 'Host memory in use without caches (system.memory.actual.used.pct)', [], (g) => {
      const v = numberAt(first('system', 'memory') ?? {}, 'system.memory.actual.used.pct');
      if (v !== undefined) g.set(v);
    });
    gauge('hasup_host_filesystem_used_ratio', 'Filesystem space used (system.filesystem.used.pct)', ['mount'], (g) => {
      for (const s of sets('system', 'filesystem')) setIf(g, { mount: stringAt(s.fields, 'system.filesystem.mount_point') ?? '?' }, numberAt(s.fields, 'system.filesystem.used.pct'));
    });
    gauge('hasup_host_disk_io_operations', 'Disk operations since boot, all disks (system.diskio)', ['op'], (g) => {
      const f = first('system', 'diskio');
      if (!f) return;
      setIf(g, { op: 'read' }, numberAt(f, 'system.diskio.read.count'));
      setIf(g, { op: 'write' }, numberAt(f, 'system.diskio.write.count'));
    });
    gauge('hasup_host_network_bytes', 'Bytes through each interface since boot (system.network)', ['interface', 'direction'], (g) => {
      for (const s of sets('system', 'network')) {
        const iface = stringAt(s.fields, 'system.network.name') ?? '?';
        setIf(g, { interface: iface, direction: 'in' }, numberAt(s.fields, 'system.network.in.bytes'));
        setIf(g, { interface: iface, direction: 'out' }, numberAt(s.fields, 'system.network.out.bytes'));
      }
    });
    gauge('hasup_service_process_cpu_ratio', 'CPU of a service\'s process tree, share of one core (system.process.cpu.total.pct)', ['service'], (g) => {
      for (const s of sets('system', 'process')) setIf(g, { service: s.service ?? '?' }, numberAt(s.fields, 'system.process.cpu.total.pct'));
    });
    gauge('hasup_service_process_rss_bytes', 'Resident memory of a service\'s process tree (system.process.memory.rss.bytes)', ['service'], (g) => {
      for (const s of sets('system', 'process')) setIf(g, { service: s.service ?? '?' }, numberAt(s.fields, 'system.process.memory.rss.bytes'));
    });
    gauge('hasup_postgresql_connections', 'Client connections to the local PostgreSQL', [], (g) => {
      const v = numberAt(first('postgresql', 'database') ?? {}, 'postgresql.activity.connections');
      if (v !== undefined) g.set(v);
    });
    gauge('hasup_postgresql_transactions', 'Transactions since the statistics reset, all databases', ['outcome'], (g) => {
      const f = first('postgresql', 'database');
      if (!f) return;
      setIf(g, { outcome: 'commit' }, numberAt(f, 'postgresql.database.transactions.commit'));
      setIf(g, { outcome: 'rollback' }, numberAt(f, 'postgresql.database.transactions.rollback'));
    });
    gauge('hasup_postgresql_replication_lag_bytes', 'WAL bytes a follower has not replayed yet (on the leader, per follower)', ['follower'], (g) => {
      for (const s of sets('postgresql', 'replication')) setIf(g, { follower: stringAt(s.fields, 'postgresql.replication.application_name') ?? '?' }, numberAt(s.fields, 'postgresql.replication.lag.bytes'));
    });
    gauge('hasup_etcd_raft_index', 'Raft index of the local etcd member', [], (g) => {
      const v = numberAt(first('etcd', 'server') ?? {}, 'etcd.raft.index');
      if (v !== undefined) g.set(v);
    });
    gauge('hasup_etcd_is_leader', 'Whether the local etcd member is the raft leader', [], (g) => {
      const f = first('etcd', 'server');
      if (f) g.set((f as { etcd?: { server?: { is_leader?: boolean } } }).etcd?.server?.is_leader ? 1 : 0);
    });
    gauge('hasup_elasticsearch_cluster_status', 'Elasticsearch cluster health (1 for the current status)', ['status'], (g) => {
      const f = first('elasticsearch', 'node_stats');
      if (!f) return;
      const current = stringAt(f, 'elasticsearch.cluster.stats.status');
      for (const status of ['green', 'yellow', 'red']) g.set({ status }, current === status ? 1 : 0);
    });
    gauge('hasup_elasticsearch_indexing_rate', 'Documents indexed per second by the local Elasticsearch node', [], (g) => {
      const v = numberAt(first('elasticsearch', 'node_stats') ?? {}, 'elasticsearch.node.stats.indices.indexing.rate');
      if (v !== undefined) g.set(v);
    });

    if (shipperStats) {
      new Counter({
        name: 'hasup_ship_events_total',
        help: 'Events through the shipper: received, delivered, conflict (already there), rejected (invalid, dropped), dropped_capacity (spool full, oldest), dropped_pending (disk behind)',
        labelNames: ['outcome'],
        registers,
        collect() {
          this.reset();
          const s = shipperStats();
          if (!s) return;
          const totals: Array<[string, number]> = [
            ['received', s.received],
            ['delivered', s.delivered],
            ['conflict', s.conflicts],
            ['rejected', s.rejected],
            ['dropped_capacity', s.spool.droppedCapacity],
            ['dropped_pending', s.spool.droppedPending],
          ];
          for (const [outcome, n] of totals) this.inc({ outcome }, n);
        },
      });
      gauge('hasup_ship_backlog_events', 'Events in the spool not yet acknowledged by Elasticsearch', [], (g) => {
        const s = shipperStats();
        if (s) g.set(s.spool.backlog);
      });
      gauge('hasup_ship_spool_bytes', 'Size of the shipper\'s disk spool', [], (g) => {
        const s = shipperStats();
        if (s) g.set(s.spool.bytes);
      });
      new Counter({
        name: 'hasup_ship_request_failures_total',
        help: 'Bulk requests that failed as a whole (no answer, 429, 5xx) and were retried',
        registers,
        collect() {
          this.reset();
          const s = shipperStats();
          if (s) this.inc(s.requestFailures);
        },
      });
    }
  }

  /** The collector's latest sample (MetricsCollector onSample). */
  update(sample: Sample): void {
    this.sample = sample;
  }
}
