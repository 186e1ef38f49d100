/**
 * Workload 1, the engine: `redis-benchmark -t set -d 100 -r 1000000` with
 * -c 1 / -c 50 and -P 1 / -P 16 against aofq's RESP port and redis-server,
 * under appendfsync no, everysec and always. A fresh server (and data dir)
 * for every run; runs interleaved across configurations to spread drift.
 * CPU of redis-benchmark (sampled from /proc every 50 ms) and of the server
 * over the benchmark's lifetime.
 */
import { CONFIG } from './config.js';
import { discard, type Fsync, type PeerAvailability, type Server, startAofq, startRedis } from './peers.js';
import { cpuMs, sleep, spawnTracked, stopProcess } from './procs.js';
import { info } from './resp-client.js';
import type { Collector } from './results.js';

export const POLICIES: readonly Fsync[] = ['no', 'everysec', 'always'];
export const SHAPES: ReadonlyArray<{ c: number; P: number }> = [
  { c: 1, P: 1 },
  { c: 50, P: 1 },
  { c: 1, P: 16 },
  { c: 50, P: 16 },
];

/** Requests per run: a few seconds each on the reference machine (below 64 MB of AOF: no auto-rewrite). */
export function requests(fsync: Fsync, c: number, P: number, scale = CONFIG.engineScale): number {
  let n: number;
  if (P === 1) n = c === 1 ? (fsync === 'always' ? 10_000 : 20_000) : 200_000;
  else n = c === 1 ? 100_000 : 350_000;
  return Math.max(1000, Math.round(n * scale));
}

export const engineId = (system: 'aofq' | 'redis', fsync: Fsync, c: number, P: number): string =>
  `engine.${fsync}.c${c}.P${P}.${system}`;

interface BenchOut {
  rps: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  benchCpuPct: number;
  serverCpuPct: number;
}

/** Untimed requests of the same shape before each timed run: aofq's JIT warms up (Redis's figure does not move). */
export const warmupRequests = (n: number): number => Math.max(500, Math.round(n / 10));

async function redisBenchmark(server: Server, n: number, c: number, P: number): Promise<BenchOut> {
  const args = ['-h', '127.0.0.1', '-p', String(server.respPort), '-t', 'set', '-d', '100', '-r', '1000000'];
  args.push('-n', String(n), '-c', String(c), '-P', String(P), '--csv');
  const t0 = performance.now();
  const srv0 = cpuMs(server.pid);
  const proc = spawnTracked('redis-benchmark', 'redis-benchmark', args, { pipeStdout: true });
  let out = '';
  proc.child.stdout?.setEncoding('utf8');
  proc.child.stdout?.on('data', (s: string) => {
    out += s;
  });
  const bench0 = cpuMs(proc.pid);
  let benchLast = bench0;
  // Sample the generator's CPU until it exits (its /proc entry goes with it); bounded by the cap.
  const capMs = 300_000;
  const timer = setTimeout(() => void stopProcess(proc, 'SIGKILL', 1000), capMs);
  const sampler = (async () => {
    for (let i = 0; i < capMs / 50 && !proc.hasExited(); i++) {
      const v = cpuMs(proc.pid);
      if (Number.isFinite(v)) benchLast = v;
      await sleep(50);
    }
  })();
  const code = await proc.exited;
  const wall = performance.now() - t0;
  const serverCpuPct = (100 * (cpuMs(server.pid) - srv0)) / wall;
  clearTimeout(timer);
  await sampler;
  const line = out.split('\n').find((l) => l.startsWith('"SET"'));
  if (code !== 0 || line === undefined)
    throw new Error(`redis-benchmark exited ${code}: ${out.slice(0, 300)}`);
  // "SET","rps","avg","min","p50","p95","p99","max"
  const f = line.replace(/"/g, '').split(',').map(Number);
  return {
    rps: f[1] as number,
    avgMs: f[2] as number,
    p50Ms: f[4] as number,
    p99Ms: f[6] as number,
    maxMs: f[7] as number,
    benchCpuPct: (100 * (benchLast - (Number.isFinite(bench0) ? bench0 : 0))) / wall,
    serverCpuPct,
  };
}

export async function runEngine(avail: PeerAvailability, rows: Collector): Promise<void> {
  const systems: Array<'aofq' | 'redis'> = ['aofq', 'redis'];
  for (const fsync of POLICIES) {
    for (const { c, P } of SHAPES) {
      for (const system of systems) {
        rows.declare({
          id: engineId(system, fsync, c, P),
          workload: 'engine',
          system,
          label: `${system === 'aofq' ? 'aofq RESP port' : 'redis-server'}, SET -d 100, appendfsync ${fsync}, -c ${c} -P ${P}`,
          unit: 'SET/s',
        });
      }
    }
  }
  if (!avail.redisBenchmark) {
    for (const fsync of POLICIES)
      for (const { c, P } of SHAPES)
        for (const s of systems) rows.missing(engineId(s, fsync, c, P), 'redis-benchmark is not installed');
    return;
  }
  for (let run = 1; run <= CONFIG.runs; run++) {
    for (const fsync of POLICIES) {
      for (const { c, P } of SHAPES) {
        for (const system of systems) {
          const id = engineId(system, fsync, c, P);
          if (system === 'redis' && !avail.redis) {
            rows.missing(id, 'redis-server is not installed');
            continue;
          }
          const n = requests(fsync, c, P);
          let server: Server | null = null;
          try {
            server =
              system === 'aofq'
                ? await startAofq({ appendfsync: fsync, resp: true })
                : await startRedis({ appendfsync: fsync });
            await redisBenchmark(server, warmupRequests(n), c, P);
            const r = await redisBenchmark(server, n, c, P);
            const persistence = await info(server.respPort, 'persistence').catch(
              () => ({}) as Record<string, string>,
            );
            rows.add(id, r.rps, {
              p50Ms: r.p50Ms,
              p99Ms: r.p99Ms,
              maxMs: r.maxMs,
              genCpuPct: r.benchCpuPct,
              serverCpuPct: r.serverCpuPct,
              requests: n,
              aofRewrites: Number(persistence.aof_rewrites ?? Number.NaN),
            });
            process.stderr.write(
              `  run ${run} engine ${system} ${fsync} c=${c} P=${P} n=${n}: ${r.rps.toFixed(0)} SET/s p99 ${r.p99Ms} ms cpu bench ${r.benchCpuPct.toFixed(0)}% server ${r.serverCpuPct.toFixed(0)}%\n`,
            );
          } catch (err) {
            rows.fail(id, `run ${run}: ${(err as Error).message}`);
            process.stderr.write(
              `  run ${run} engine ${system} ${fsync} c=${c} P=${P}: FAILED ${(err as Error).message}\n`,
            );
          } finally {
            if (server) await discard(server);
          }
        }
      }
    }
  }
}
