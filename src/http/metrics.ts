/**
 * The Prometheus metrics of GET /metrics, defined in this one module with
 * prom-client, on a registry of their own (never prom-client's global one).
 *
 * Two kinds, to keep the hot path cheap:
 *  - counted as they happen: enqueued, acked and nacked jobs and lease
 *    expiries per queue (from the node's request and event observers) are a
 *    Map get and a `++` on a plain number each (prom-client's labelled inc
 *    hashes its labels on every call, too much for the queue's hot path), and
 *    are handed to their prom-client counters at scrape time; fsync latencies
 *    (the AOF writer's observer) and HTTP request latencies by operationId and
 *    status class go straight into prom-client histograms (a cost that is
 *    small next to an fsync or an HTTP request). No label ever holds a job id.
 *  - read at scrape time from the node: jobs per state and queue, AOF size,
 *    LSNs, delayed fsyncs, write status, rewrite stats, load progress,
 *    connections. Nothing on the hot path updates them.
 * Plus prom-client's default process metrics (CPU, memory, GC, event-loop lag).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { JobCounts, QueueEvent, QueueRequest, ResultMap } from '../queue/types.js';
import type { InfoFields } from './backend.js';

/** What the scrape-time gauges read; the server layer adapts the node (and the ports) to it. */
export interface MetricsSource {
  /** Names of the queues that exist. */
  queues(): readonly string[];
  /** One queue's job counts, or null if it went away meanwhile. */
  jobCounts(queue: string): JobCounts | null;
  /** INFO persistence (the AOF engine's fields, Redis's names). */
  persistence(): InfoFields;
  /** Open WebSocket connections. */
  websocketConnections(): number;
  /** Connected RESP clients. */
  respClients(): number;
}

export interface LoadState {
  loading: boolean;
  doneBytes: number;
  totalBytes: number;
}

/** The text format Prometheus scrapes. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const JOB_STATE_FIELDS = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;
/** fsync latency buckets, seconds: 50 µs (page cache on fast NVMe) to 2.5 s (a stalled disk). */
const FSYNC_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** HTTP latency buckets, seconds; long polls land in the top ones. */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type Observer = { observe(value: number): void };

/** One queue's event counts, plain numbers: the hot path only increments them. */
class QueueTally {
  enqueued = 0;
  acked = 0;
  nacked = 0;
  expired = 0;
}
type TallyField = 'enqueued' | 'acked' | 'nacked' | 'expired';

function numberField(fields: InfoFields, name: string): number | null {
  const value = fields[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export class Metrics {
  readonly registry = new Registry();
  private source: MetricsSource | null = null;
  private readonly tallies = new Map<string, QueueTally>();
  private readonly fsyncSeconds: Histogram;
  private readonly httpSeconds: Histogram<'operation' | 'status_class'>;
  private readonly httpChildren = new Map<string, Observer>();

  constructor(loadState: () => LoadState) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const metrics = this;
    /** A per-queue counter whose values are the tallies, copied at scrape time (they only grow). */
    const tallyCounter = (name: string, help: string, field: TallyField) =>
      new Counter({
        name,
        help,
        labelNames: ['queue'],
        registers,
        collect() {
          this.reset();
          for (const [queue, tally] of metrics.tallies)
            if (tally[field] > 0) this.inc({ queue }, tally[field]);
        },
      });
    tallyCounter(
      'aofq_jobs_enqueued_total',
      'Jobs added to a queue (duplicates of an existing jobId not counted)',
      'enqueued',
    );
    tallyCounter('aofq_jobs_acked_total', 'Jobs acknowledged (completed) by a consumer', 'acked');
    tallyCounter(
      'aofq_jobs_nacked_total',
      'Failed attempts reported by a consumer (nack), retried or not',
      'nacked',
    );
    tallyCounter(
      'aofq_lease_expiries_total',
      'Leases that expired before an ack or nack (the job stalled)',
      'expired',
    );
    this.fsyncSeconds = new Histogram({
      name: 'aofq_aof_fsync_duration_seconds',
      help: 'Latency of the fdatasync calls on the AOF',
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.httpSeconds = new Histogram({
      name: 'aofq_http_request_duration_seconds',
      help: 'HTTP request latency by operationId and status class',
      labelNames: ['operation', 'status_class'],
      buckets: HTTP_BUCKETS,
      registers,
    });

    new Gauge({
      name: 'aofq_jobs',
      help: 'Jobs per queue and state, read at scrape time',
      labelNames: ['queue', 'state'],
      registers,
      collect() {
        this.reset();
        const source = metrics.source;
        if (source === null) return;
        for (const queue of source.queues()) {
          const counts = source.jobCounts(queue);
          if (counts === null) continue;
          for (const state of JOB_STATE_FIELDS) this.labels(queue, state).set(counts[state]);
        }
      },
    });
    new Gauge({
      name: 'aofq_queue_paused',
      help: '1 while the queue is paused',
      labelNames: ['queue'],
      registers,
      collect() {
        this.reset();
        const source = metrics.source;
        if (source === null) return;
        for (const queue of source.queues()) {
          const counts = source.jobCounts(queue);
          if (counts !== null) this.labels(queue).set(counts.paused ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'aofq_aof_loading',
      help: '1 while the AOF loads',
      registers,
      collect() {
        this.set(loadState().loading ? 1 : 0);
      },
    });
    new Gauge({
      name: 'aofq_aof_load_done_bytes',
      help: 'Bytes of the AOF loaded so far (the total once loaded)',
      registers,
      collect() {
        this.set(loadState().doneBytes);
      },
    });
    new Gauge({
      name: 'aofq_aof_load_total_bytes',
      help: 'Bytes of the AOF files the load reads',
      registers,
      collect() {
        this.set(loadState().totalBytes);
      },
    });
    /** A gauge read from INFO persistence; absent until the node is there. */
    const persistenceGauge = (name: string, help: string, read: (fields: InfoFields) => number | null) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const source = metrics.source;
          if (source === null) return;
          const value = read(source.persistence());
          if (value !== null) this.set(value);
        },
      });
    persistenceGauge(
      'aofq_aof_size_bytes',
      'Bytes of every AOF file the manifest lists (base and incr)',
      (f) => numberField(f, 'aof_current_size'),
    );
    persistenceGauge('aofq_aof_base_size_bytes', 'Size of the AOF after the last rewrite or load', (f) =>
      numberField(f, 'aof_base_size'),
    );
    persistenceGauge('aofq_aof_buffer_bytes', 'Bytes appended but not yet written', (f) =>
      numberField(f, 'aof_buffer_length'),
    );
    persistenceGauge('aofq_aof_last_lsn', 'LSN of the last record appended', (f) =>
      numberField(f, 'aof_last_lsn'),
    );
    persistenceGauge('aofq_aof_fsynced_lsn', 'LSN up to which the AOF is fdatasync-ed', (f) =>
      numberField(f, 'aof_fsynced_lsn'),
    );
    persistenceGauge(
      'aofq_aof_write_ok',
      '1 while AOF writes succeed; 0 while they fail (writes refused)',
      (f) => (f.aof_last_write_status === undefined ? null : f.aof_last_write_status === 'ok' ? 1 : 0),
    );
    persistenceGauge('aofq_aof_rewrite_in_progress', '1 while an AOF rewrite runs', (f) =>
      numberField(f, 'aof_rewrite_in_progress'),
    );
    persistenceGauge(
      'aofq_aof_rewrite_last_ok',
      '1 if the last AOF rewrite succeeded (or none ran yet)',
      (f) =>
        f.aof_last_bgrewrite_status === undefined ? null : f.aof_last_bgrewrite_status === 'ok' ? 1 : 0,
    );
    persistenceGauge(
      'aofq_aof_rewrite_last_duration_seconds',
      'Duration of the last AOF rewrite, whole seconds (-1 before the first)',
      (f) => numberField(f, 'aof_last_rewrite_time_sec'),
    );
    persistenceGauge(
      'aofq_aof_rewrite_consecutive_failures',
      'AOF rewrites that failed in a row (automatic rewrites back off)',
      (f) => numberField(f, 'aof_rewrites_consecutive_failures'),
    );
    /** A counter read from INFO persistence: monotonic in the engine, copied at scrape time. */
    const persistenceCounter = (name: string, help: string, field: string) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const source = metrics.source;
          const value = source === null ? null : numberField(source.persistence(), field);
          this.reset();
          if (value !== null && value > 0) this.inc(value);
        },
      });
    persistenceCounter('aofq_aof_rewrites_total', 'AOF rewrites started since the start', 'aof_rewrites');
    persistenceCounter(
      'aofq_aof_delayed_fsyncs_total',
      'Writes that waited behind a slow background fsync (everysec), as Redis aof_delayed_fsync',
      'aof_delayed_fsync',
    );
    new Gauge({
      name: 'aofq_websocket_connections',
      help: 'Open WebSocket connections',
      registers,
      collect() {
        this.set(metrics.source?.websocketConnections() ?? 0);
      },
    });
    new Gauge({
      name: 'aofq_resp_clients',
      help: 'Connected RESP clients',
      registers,
      collect() {
        this.set(metrics.source?.respClients() ?? 0);
      },
    });
  }

  /** The node has loaded: the scrape-time gauges read it from now on. */
  attach(source: MetricsSource): void {
    this.source = source;
  }

  private tally(queue: string): QueueTally {
    let tally = this.tallies.get(queue);
    if (tally === undefined) {
      tally = new QueueTally();
      this.tallies.set(queue, tally);
    }
    return tally;
  }

  /** The node's request observer: counts enqueues, acks and nacks. Called for every queue request. */
  onQueueRequest(request: QueueRequest, result: unknown): void {
    switch (request.op) {
      case 'add': {
        let fresh = 0;
        for (const job of (result as ResultMap['add']).jobs) if (!job.duplicate) fresh++;
        if (fresh > 0) this.tally(request.queue).enqueued += fresh;
        return;
      }
      case 'ack':
        this.tally(request.queue).acked++;
        return;
      case 'nack':
        this.tally(request.queue).nacked++;
        return;
      default:
        return;
    }
  }

  /** The node's event observer: a `stalled` event is a lease that expired. */
  onQueueEvent(queue: string, event: QueueEvent): void {
    if (event.event === 'stalled') this.tally(queue).expired++;
  }

  /** The AOF writer's fsync observer. */
  onFsync(latencyUs: number): void {
    this.fsyncSeconds.observe(latencyUs / 1e6);
  }

  /** One HTTP request answered. `operation` is its operationId (bounded: one per route). */
  onHttpResponse(operation: string, statusCode: number, elapsedMs: number): void {
    const statusClass = `${Math.floor(statusCode / 100)}xx`;
    const key = `${operation} ${statusClass}`;
    let child = this.httpChildren.get(key);
    if (child === undefined) {
      child = this.httpSeconds.labels(operation, statusClass);
      this.httpChildren.set(key, child);
    }
    child.observe(elapsedMs / 1000);
  }

  /** The exposition text. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
