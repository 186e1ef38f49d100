/**
 * SIGKILL during AOF rewrites, with real processes: a child rewrites back to
 * back under a write load (appendfsync always) and is killed at a random
 * moment, 20 times, alternating the two base formats. Each restart must load
 * a consistent state (from the old or the new manifest), keep every write the
 * child reported durable, and the next rewrite must leave no temp file and no
 * file the manifest does not list.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode } from '../../src/node/node.js';

const CHILD = new URL('../integration/fixtures/rewrite-crash-child.ts', import.meta.url).pathname;
const RUNS = 20;
let child: ChildProcess | null = null;
let root = '';

afterEach(() => {
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = null;
});
afterAll(async () => {
  if (root !== '') await rm(root, { recursive: true, force: true });
});

/** mulberry32. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ChildRun {
  /** Last durable index per writer. */
  durable: Map<number, number>;
  /** A rewrite was running when the child was killed. */
  killedInRewrite: boolean;
  /** Rewrites that completed before the kill. */
  rewritesDone: number;
}

/**
 * Run the child until SIGKILL: `kill.afterMs` after "ready", or, with `kill.afterRewrite`, the
 * moment it reports its first completed rewrite (at the latest after 30 s).
 */
function runChild(
  dir: string,
  runId: number,
  preamble: boolean,
  kill: { afterMs: number } | { afterRewrite: true },
): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', CHILD, dir, String(runId), preamble ? 'yes' : 'no'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child = proc;
    const durable = new Map<number, number>();
    let running = false;
    let rewritesDone = 0;
    let buffered = '';
    let stderr = '';
    const hardLimit = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    proc.stdout?.on('data', (d: Buffer) => {
      buffered += d.toString();
      let nl = buffered.indexOf('\n');
      while (nl !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'ready') {
          if ('afterMs' in kill) setTimeout(() => proc.kill('SIGKILL'), kill.afterMs);
        } else if (line === 'rewrite start') running = true;
        else if (line.startsWith('rewrite ')) {
          running = false;
          if (line === 'rewrite done') {
            rewritesDone++;
            if ('afterRewrite' in kill) proc.kill('SIGKILL');
          }
        } else {
          const [w, i] = line.split(' ').map(Number) as [number, number];
          durable.set(w, i);
        }
        nl = buffered.indexOf('\n');
      }
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(hardLimit);
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}/${signal}: ${stderr}`));
      else resolve({ durable, killedInRewrite: running, rewritesDone });
    });
  });
}

async function listed(cfg: AofConfig): Promise<string[]> {
  const text = await readFile(join(cfg.dir, cfg.appenddirname, `${cfg.appendfilename}.manifest`), 'utf8');
  return text
    .split('\n')
    .map((line) => /^file (\S+)/.exec(line)?.[1])
    .filter((n): n is string => n !== undefined);
}

describe('SIGKILL during AOF rewrites', () => {
  it(`loads a consistent state and keeps every durable write, over ${RUNS} kills`, async () => {
    root = await mkdtemp(join(tmpdir(), 'aofq-rwkill-'));
    const cfg: AofConfig = { ...DEFAULT_AOF_CONFIG, dir: root, appendfsync: 'no' };
    // A dataset that takes the helper some time to replay and write.
    const seed = await AofqNode.open(cfg);
    const value = Buffer.alloc(100, 0x61);
    for (let i = 0; i < 20_000; i++)
      await seed.command([Buffer.from('SET'), Buffer.from(`bulk:${i}`), value]);
    await seed.close();

    const random = prng(7);
    let killedInRewrite = 0;
    let rewritesDone = 0;
    for (let run = 1; run <= RUNS; run++) {
      const preamble = run % 2 === 0;
      // Every fifth child lives until a rewrite has finished (on a loaded machine that can take
      // seconds: the helper's first job compiles its modules under tsx), so both paths are exercised.
      const killAfterMs = 100 + Math.floor(random() * 1100);
      const kill = run % 5 === 0 ? { afterRewrite: true as const } : { afterMs: killAfterMs };
      const result = await runChild(root, run, preamble, kill);
      const durable = result.durable;
      if (result.killedInRewrite) killedInRewrite++;
      rewritesDone += result.rewritesDone;
      const node = await AofqNode.open(cfg);
      try {
        expect(node.store.size).toBeGreaterThanOrEqual(20_000);
        for (const [w, i] of durable) {
          const got = String(await node.command([Buffer.from('GET'), Buffer.from(`k${w}`)]));
          const [gotRun, gotWriter, gotIndex] = got.split('-').map(Number) as [number, number, number];
          expect(gotRun).toBe(run);
          expect(gotWriter).toBe(w);
          expect(gotIndex).toBeGreaterThanOrEqual(i);
        }
      } finally {
        await node.close();
      }
    }
    // The kills must have hit rewrites in flight, and rewrites must also have finished, or the test proves little.
    expect(killedInRewrite).toBeGreaterThanOrEqual(RUNS / 2);
    expect(rewritesDone).toBeGreaterThan(0);

    const node = await AofqNode.open(cfg);
    try {
      const digest = node.digest();
      await node.rewrite();
      expect(await node.waitRewrite()).toBe(true);
      const names = (await readdir(join(root, cfg.appenddirname))).sort();
      expect(names).toEqual([`${cfg.appendfilename}.manifest`, ...(await listed(cfg))].sort());
      expect(node.digest()).toBe(digest);
    } finally {
      await node.close();
    }
  }, 120_000);
});
