/**
 * `npm run bench`: aofq against real peers on this machine (issue 8). Installs
 * the peers when missing (Debian's redis-server, redis-tools, beanstalkd;
 * BullMQ 6 from the project's devDependencies), then runs, each repeated and
 * the median taken: the engine (redis-benchmark SET against aofq's RESP port
 * and redis-server), queue enqueue-only and end-to-end throughput (aofq HTTP
 * and WebSocket, BullMQ, beanstalkd; fast and durable modes), recovery time
 * and memory with 1,000,000 waiting jobs, and enqueue p99 during a rewrite.
 *
 * Prints the tables, writes bench/results/<date>.json (with the machine) and
 * <date>.svg (the throughput ratios), and regenerates BENCHMARKS.md's
 * generated section. Knobs: bench/suite/config.ts (BENCH_QUICK=1 for a smoke
 * run, BENCH_ONLY=engine,e2e, ...). Every server is stopped by PID on exit,
 * error or Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { CONFIG, ROOT, WORKLOADS, want } from './suite/config.js';
import { runEngine } from './suite/engine.js';
import { ensurePeers, removeAllDirs, versions } from './suite/peers.js';
import { installCleanup, stopAll } from './suite/procs.js';
import { runQueues } from './suite/queues.js';
import { runDatasets } from './suite/recovery.js';
import {
  chartName,
  compare,
  markdownSection,
  printTables,
  type ReportConfig,
  type RunMeta,
  renderChart,
  updateBenchmarksMd,
} from './suite/report.js';
import { Collector, type Row } from './suite/results.js';

function machine(): Record<string, string | number> {
  const out: Record<string, string | number> = {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    platform: `${os.platform()} ${os.arch()}`,
    loadStart: os.loadavg()[0]?.toFixed(2) ?? '?',
    tmp: CONFIG.tmp,
  };
  try {
    const df =
      execFileSync('df', ['-T', CONFIG.tmp], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/) ?? [];
    out.fs = `${df[1] ?? '?'} on ${df[0] ?? '?'}`;
    const dev = basename(df[0] ?? '').replace(/\d+$/, '');
    const wc = `/sys/block/${dev}/queue/write_cache`;
    if (dev && existsSync(wc)) out.writeCache = readFileSync(wc, 'utf8').trim();
  } catch {
    out.fs = 'unknown';
  }
  return out;
}

/** What a run's JSON holds (plus the comparisons and targets computed from its rows). */
interface SavedRun extends RunMeta {
  config: ReportConfig & Record<string, unknown>;
  rows: Row[];
}

/** Tables on stdout, the JSON, the chart, and (when `docs`) BENCHMARKS.md's generated section. */
async function report(run: SavedRun, docs: boolean): Promise<void> {
  const { comparisons, targets } = compare(run.rows);
  printTables(run.rows, comparisons, targets);
  const title = `${run.startedAt.slice(0, 16)}Z, ${run.machine.nproc} vCPU${run.config.quick ? ', QUICK smoke run' : ''}`;
  writeFileSync(run.chartFile, await renderChart(comparisons, targets, title));
  // Paths in the JSON are relative to the repository (the file travels with it).
  const portable = {
    ...run,
    jsonFile: relative(ROOT, run.jsonFile),
    chartFile: relative(ROOT, run.chartFile),
  };
  writeFileSync(run.jsonFile, `${JSON.stringify({ ...portable, comparisons, targets }, null, 2)}\n`);
  process.stdout.write(`\nresults: ${run.jsonFile}\nchart:   ${run.chartFile}\n`);
  if (docs) {
    const file = process.env.BENCH_DOCS_FILE ?? join(ROOT, 'BENCHMARKS.md');
    updateBenchmarksMd(file, markdownSection(run.rows, comparisons, targets, run, run.config));
    process.stdout.write(`updated: ${file}\n`);
  }
}

/** BENCH_FROM=<results.json>: report an earlier run again (tables, chart, BENCHMARKS.md) without measuring. */
async function reportAgain(file: string): Promise<void> {
  const run = JSON.parse(readFileSync(file, 'utf8')) as SavedRun;
  run.jsonFile = resolve(file);
  run.chartFile = join(dirname(run.jsonFile), chartName(file));
  await report(
    run,
    process.env.BENCH_DOCS !== undefined ? process.env.BENCH_DOCS === '1' : !run.config.quick,
  );
}

async function main(): Promise<void> {
  if (process.env.BENCH_FROM) {
    await reportAgain(process.env.BENCH_FROM);
    return;
  }
  installCleanup(removeAllDirs);
  const watchdog = setTimeout(() => {
    process.stderr.write(`# watchdog: BENCH_MAX_S=${CONFIG.maxS} s exceeded\n`);
    process.kill(process.pid, 'SIGTERM');
  }, CONFIG.maxS * 1000);
  watchdog.unref();

  const startedAt = new Date();
  const t0 = performance.now();
  const m = machine();
  const selected = WORKLOADS.filter((w) => want(w));
  process.stderr.write(
    `# aofq bench suite${CONFIG.quick ? ' (QUICK smoke run)' : ''}: ${selected.join(', ')}; runs=${CONFIG.runs} jobs=${CONFIG.jobs} cap=${CONFIG.capS}s recoveryJobs=${CONFIG.recoveryJobs} engineScale=${CONFIG.engineScale}\n`,
  );
  process.stderr.write(`# machine: ${JSON.stringify(m)}\n`);
  const avail = ensurePeers();
  const v = versions(avail);
  process.stderr.write(`# versions: ${JSON.stringify(v)}\n`);
  for (const note of avail.notes) process.stderr.write(`# ${note}\n`);

  const rows = new Collector();
  const phase = async (name: string, fn: () => Promise<void>): Promise<void> => {
    const p0 = performance.now();
    process.stderr.write(`\n# ${name}\n`);
    await fn();
    process.stderr.write(`# ${name}: ${((performance.now() - p0) / 1000).toFixed(0)} s\n`);
  };
  if (want('engine')) await phase('engine', () => runEngine(avail, rows));
  const queueWork = new Set((['enqueue', 'e2e'] as const).filter((w) => want(w)));
  if (queueWork.size > 0) await phase([...queueWork].join(' + '), () => runQueues(queueWork, avail, rows));
  if (want('recovery') || want('memory') || want('rewrite')) {
    await phase('recovery / memory / rewrite', () => runDatasets(avail, rows));
  }

  const finished = rows.finish();
  const durationS = (performance.now() - t0) / 1000;
  m.loadEnd = os.loadavg()[0]?.toFixed(2) ?? '?';
  mkdirSync(CONFIG.out, { recursive: true });
  const stamp = startedAt
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
  const jsonFile = join(CONFIG.out, `${stamp}${CONFIG.quick ? '-quick' : ''}.json`);
  const notes = [...avail.notes];
  for (const r of finished) {
    if (r.status !== 'ok') notes.push(`${r.id}: ${r.status}${r.note ? ` (${r.note})` : ''}`);
    else if (r.note) notes.push(`${r.id}: ${r.note}`);
    if ((r.detail.capped ?? 0) > 0) {
      notes.push(`${r.id}: hit its time cap in at least half the runs (the figure is jobs done / time)`);
    }
    if ((r.detail.errors ?? 0) > 0) notes.push(`${r.id}: ${r.detail.errors} request errors (median per run)`);
    if ((r.detail.aofRewrites ?? 0) > 0) {
      notes.push(
        `${r.id}: ${r.detail.aofRewrites} automatic AOF rewrite(s) inside a run (median), as configured by default (100% / 64 MB)`,
      );
    }
  }
  const saved: SavedRun = {
    startedAt: startedAt.toISOString(),
    durationS,
    machine: m,
    versions: v,
    notes,
    jsonFile,
    chartFile: join(CONFIG.out, chartName(jsonFile)),
    config: { ...CONFIG, only: [...CONFIG.only] },
    rows: finished,
  };
  await report(saved, CONFIG.docs);
  process.stdout.write(`total: ${durationS.toFixed(0)} s\n`);
  await stopAll();
  removeAllDirs();
}

await main();
process.exit(0);
