/**
 * The suite's results: one Row per measured configuration (the median over
 * its runs, with every run kept), Comparisons (aofq / peer, in the same run)
 * and Targets (a comparison's ratio against the bound).
 */
export type System = 'aofq' | 'redis' | 'bullmq' | 'beanstalkd';
export type WorkloadName = 'engine' | 'enqueue' | 'e2e' | 'recovery' | 'memory' | 'rewrite';

export interface Row {
  id: string;
  workload: WorkloadName;
  system: System;
  /** Human description of what ran. */
  label: string;
  unit: string;
  /** Median of `runs`; NaN when nothing was measured. */
  value: number;
  runs: number[];
  /** Medians of the other measures (latency, CPU, ...). */
  detail: Record<string, number>;
  status: 'ok' | 'missing' | 'failed';
  note?: string;
}

export interface Comparison {
  id: string;
  workload: WorkloadName;
  label: string;
  aofq: string;
  peer: string;
  /** aofq's value / the peer's. */
  ratio: number;
  /** Throughput: higher is better for aofq. Times and memory: lower is better. */
  higherIsBetter: boolean;
  /** Drawn in the chart (throughput ratios). */
  chart: boolean;
}

export interface Target {
  id: string;
  text: string;
  comparison: string;
  /** ratio >= min (throughput) or ratio <= max (time, memory). */
  min?: number;
  max?: number;
  ratio: number;
  met: boolean | null;
}

export function median(xs: readonly number[]): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Accumulates runs per row id, in the order rows were first declared. */
export class Collector {
  private readonly rows = new Map<string, Row & { details: Record<string, number[]> }>();

  declare(row: Omit<Row, 'value' | 'runs' | 'detail' | 'status'> & { status?: Row['status'] }): void {
    if (this.rows.has(row.id)) return;
    this.rows.set(row.id, {
      ...row,
      value: Number.NaN,
      runs: [],
      detail: {},
      status: row.status ?? 'ok',
      details: {},
    });
  }

  add(id: string, value: number, detail: Record<string, number | undefined> = {}): void {
    const r = this.rows.get(id);
    if (!r) throw new Error(`row ${id} was not declared`);
    r.runs.push(value);
    for (const [k, v] of Object.entries(detail)) {
      if (v === undefined) continue;
      let list = r.details[k];
      if (!list) {
        list = [];
        r.details[k] = list;
      }
      list.push(v);
    }
  }

  fail(id: string, why: string): void {
    const r = this.rows.get(id);
    if (!r) return;
    r.note = r.note ? `${r.note}; ${why}` : why;
  }

  missing(id: string, why: string): void {
    const r = this.rows.get(id);
    if (!r) return;
    r.status = 'missing';
    r.note = why;
  }

  finish(): Row[] {
    const out: Row[] = [];
    for (const r of this.rows.values()) {
      const { details, ...row } = r;
      const detail: Record<string, number> = {};
      for (const [k, list] of Object.entries(details)) detail[k] = median(list);
      const value = median(row.runs);
      const status: Row['status'] =
        row.status === 'missing' ? 'missing' : Number.isFinite(value) ? 'ok' : 'failed';
      out.push({ ...row, value, detail, status });
    }
    return out;
  }
}
