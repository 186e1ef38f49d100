/**
 * The benchmark suite's own logic (bench/suite): payloads of exactly the
 * stated size, medians and row status, ratios and target verdicts, and the
 * BENCHMARKS.md update that must keep the hand-written sections as they are.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { payloadObject, payloadText } from '../../bench/suite/payload.js';
import { BEGIN, compare, END, updateBenchmarksMd } from '../../bench/suite/report.js';
import { Collector, median } from '../../bench/suite/results.js';

describe('bench payloads', () => {
  it('are exactly the stated size, valid JSON, and distinct per index', () => {
    const seen = new Set<string>();
    for (const i of [0, 1, 2, 999, 123_456, 9_999_999, 10_000_001]) {
      const text = payloadText(i);
      expect(Buffer.byteLength(text)).toBe(100);
      expect(JSON.stringify(payloadObject(i))).toBe(text);
      seen.add(text);
    }
    expect(seen.size).toBe(7);
    expect(Buffer.byteLength(payloadText(5, 64))).toBe(64);
    expect(() => payloadText(1, 10)).toThrow(/too small/);
  });
});

describe('bench results', () => {
  it('takes the median of finite runs and marks rows without one as failed', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5])).toBe(5);
    expect(Number.isNaN(median([]))).toBe(true);
    const c = new Collector();
    c.declare({ id: 'a', workload: 'e2e', system: 'aofq', label: 'a', unit: 'jobs/s' });
    c.declare({ id: 'b', workload: 'e2e', system: 'bullmq', label: 'b', unit: 'jobs/s' });
    c.declare({ id: 'c', workload: 'e2e', system: 'beanstalkd', label: 'c', unit: 'jobs/s' });
    for (const v of [10, 30, 20]) c.add('a', v, { p99Ms: v / 10 });
    c.fail('b', 'run 1: boom');
    c.missing('c', 'beanstalkd is not installed');
    const [a, b, cc] = c.finish();
    expect(a).toMatchObject({ value: 20, runs: [10, 30, 20], detail: { p99Ms: 2 }, status: 'ok' });
    expect(b).toMatchObject({ status: 'failed', note: 'run 1: boom' });
    expect(cc).toMatchObject({ status: 'missing' });
    expect(() => c.add('nope', 1)).toThrow(/not declared/);
  });

  it('computes aofq / peer and judges each target in its direction', () => {
    const c = new Collector();
    const row = (id: string, value: number): void => {
      c.declare({ id, workload: 'e2e', system: 'aofq', label: id, unit: 'jobs/s' });
      if (Number.isFinite(value)) c.add(id, value);
    };
    row('e2e.fast.aofq-ws', 30_000);
    row('e2e.fast.bullmq', 10_000);
    row('e2e.durable.aofq-ws', 20_000);
    row('e2e.durable.bullmq', 10_000);
    row('e2e.durable.beanstalkd', Number.NaN);
    row('recovery.aofq.snapshot', 1.2);
    row('recovery.bullmq.preamble', 1.0);
    const { comparisons, targets } = compare(c.finish());
    const ratio = (id: string): number | undefined => comparisons.find((x) => x.id === id)?.ratio;
    expect(ratio('e2e.fast.ws.bullmq')).toBe(3);
    expect(ratio('e2e.durable.ws.bullmq')).toBe(2);
    const verdict = (id: string): boolean | null | undefined => targets.find((t) => t.id === id)?.met;
    expect(verdict('e2e-ws-fast')).toBe(true);
    expect(verdict('e2e-durable-bullmq')).toBe(false);
    expect(verdict('e2e-durable-beanstalkd')).toBe(null);
    expect(verdict('recovery')).toBe(false);
  });
});

describe('BENCHMARKS.md update', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inserts the generated section before the first heading, then replaces only it', () => {
    dir = mkdtempSync(join(tmpdir(), 'aofq-bench-md-'));
    const file = join(dir, 'BENCHMARKS.md');
    const intro = '# aofq benchmarks\n\nIntro text.\n';
    const handWritten = '## AOF engine\n\nHand-written | table |\n\n## Queue core\n\nMore.\n';
    writeFileSync(file, `${intro}\n${handWritten}`);
    updateBenchmarksMd(file, `${BEGIN}\nfirst run\n${END}`);
    const once = readFileSync(file, 'utf8');
    expect(once.startsWith(intro)).toBe(true);
    expect(once.indexOf('first run')).toBeLessThan(once.indexOf('## AOF engine'));
    expect(once.endsWith(handWritten)).toBe(true);
    updateBenchmarksMd(file, `${BEGIN}\nsecond run\n${END}`);
    const twice = readFileSync(file, 'utf8');
    expect(twice).not.toContain('first run');
    expect(twice).toBe(once.replace('first run', 'second run'));
  });
});
