/**
 * The AOF rewrite through the whole node, with the real rewrite helper process:
 * Redis's aof-race (20 writers × 20,000 INCR of one key during a rewrite),
 * a rewrite under a mixed write load in both base formats (live digest equals
 * the digest after reload), history GC and aof-disable-auto-gc, and
 * redis-check-aof on what a rewrite leaves.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { isAofqError } from '../../src/errors/index.js';
import { AofqNode } from '../../src/node/node.js';
import type { LeasedJob } from '../../src/queue/index.js';

const REDIS_CHECK_AOF = '/usr/bin/redis-check-aof';
const dirs: string[] = [];
const nodes: AofqNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempConfig(overrides: Partial<AofConfig> = {}): Promise<AofConfig> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-rewrite-'));
  dirs.push(dir);
  return { ...DEFAULT_AOF_CONFIG, dir, ...overrides };
}

async function open(cfg: AofConfig): Promise<AofqNode> {
  const node = await AofqNode.open(cfg);
  nodes.push(node);
  return node;
}

async function closeNode(node: AofqNode): Promise<void> {
  await node.close();
  nodes.splice(nodes.indexOf(node), 1);
}

const b = (...args: (string | number)[]): Buffer[] => args.map((a) => Buffer.from(String(a)));

async function manifestText(cfg: AofConfig): Promise<string> {
  return readFile(join(cfg.dir, cfg.appenddirname, `${cfg.appendfilename}.manifest`), 'utf8');
}

function entryNames(manifest: string, type: 'b' | 'h' | 'i'): string[] {
  const out: string[] = [];
  for (const line of manifest.split('\n')) {
    const m = /^file (\S+) seq \d+ type ([bhi])/.exec(line);
    if (m && m[2] === type) out.push(m[1] as string);
  }
  return out;
}

function redisCheck(args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(REDIS_CHECK_AOF, args, { cwd, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

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

/** Strings, counters, hashes wider than 64 fields, far TTLs, queue jobs in every state. */
async function mixedLoad(node: AofqNode, random: () => number, steps: number, tag: string): Promise<void> {
  const leased: Array<{ queue: string; lease: LeasedJob }> = [];
  for (let i = 0; i < steps; i++) {
    const roll = random();
    const key = `${tag}:k${Math.floor(random() * 200)}`;
    try {
      if (roll < 0.2) await node.command(b('SET', key, `v${i}-${'x'.repeat(Math.floor(random() * 40))}`));
      else if (roll < 0.3)
        await node.command(b('SET', key, `t${i}`, 'EX', 3600 + Math.floor(random() * 100)));
      else if (roll < 0.4) await node.command(b('INCRBY', `${tag}:c${Math.floor(random() * 5)}`, 7));
      else if (roll < 0.55)
        await node.command(b('HSET', `${tag}:h${Math.floor(random() * 3)}`, `f${i % 150}`, `x${i}`));
      else if (roll < 0.6) await node.command(b('DEL', key));
      else if (roll < 0.75) {
        await node.queue({ op: 'add', queue: `${tag}q`, jobs: [{ name: 'job', data: { i }, opts: {} }] });
      } else if (roll < 0.85) {
        const { jobs } = await node.queue({ op: 'lease', queue: `${tag}q`, count: 2, leaseMs: 3_600_000 });
        for (const lease of jobs) leased.push({ queue: `${tag}q`, lease });
      } else if (leased.length > 0) {
        const { queue, lease } = leased.shift() as { queue: string; lease: LeasedJob };
        if (random() < 0.6) await node.queue({ op: 'ack', queue, id: lease.job.id, token: lease.token });
        else
          await node.queue({ op: 'nack', queue, id: lease.job.id, token: lease.token, failedReason: 'no' });
      }
    } catch (err) {
      if (!isAofqError(err)) throw err;
    }
  }
}

describe('AOF rewrite through the node (rewrite helper process)', () => {
  it('aof-race: 20 writers × 20,000 INCR of one key during a rewrite give 400,000, also after a restart', async () => {
    const cfg = await tempConfig();
    const node = await open(cfg);
    const WRITERS = 20;
    const PER_WRITER = 20_000;
    let done = 0;
    let rewriteStarted: Promise<unknown> | null = null;
    const writer = async (): Promise<void> => {
      for (let i = 0; i < PER_WRITER; i++) {
        await node.command(b('INCR', 'race'));
        done++;
        if (done === 40_000) rewriteStarted = node.rewrite();
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, writer));
    expect(await rewriteStarted).toEqual({
      status: 'started',
      message: 'Background append only file rewriting started',
    });
    expect(await node.waitRewrite()).toBe(true);
    const info = node.aof.info();
    expect(info.aof_rewrites).toBe(1);
    expect(info.aof_last_bgrewrite_status).toBe('ok');
    expect(String(await node.command(b('GET', 'race')))).toBe('400000');
    // The base was cut in the middle of the writes: the new incr holds the rest.
    const manifest = await manifestText(cfg);
    const base = /type b startlsn (\d+)/.exec(manifest);
    expect(base).not.toBeNull();
    const baseLsn = Number(base?.[1]);
    expect(baseLsn).toBeGreaterThanOrEqual(40_000);
    expect(baseLsn).toBeLessThan(node.aof.lastLsn);
    await closeNode(node);
    const again = await open(cfg);
    expect(String(await again.command(b('GET', 'race')))).toBe('400000');
  }, 60_000);

  for (const preamble of [true, false]) {
    it(`keeps the state under write load (aof-use-rdb-preamble ${preamble ? 'yes' : 'no'}), GCs history, passes redis-check-aof`, async () => {
      const cfg = await tempConfig({ aofUseRdbPreamble: preamble });
      const node = await open(cfg);
      const random = prng(preamble ? 11 : 12);
      await mixedLoad(node, random, 3000, 'before');
      const oldManifest = await manifestText(cfg);
      const started = await node.rewrite();
      expect(started.status).toBe('started');
      await expect(node.rewrite()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_REWRITE_IN_PROGRESS' });
      await mixedLoad(node, random, 2000, 'during');
      expect(await node.waitRewrite()).toBe(true);
      await mixedLoad(node, random, 500, 'after');
      const live = node.digest();
      const manifest = await manifestText(cfg);
      expect(entryNames(manifest, 'h')).toEqual([]);
      const oldFiles = [...entryNames(oldManifest, 'b'), ...entryNames(oldManifest, 'i')];
      const files = await readdir(join(cfg.dir, cfg.appenddirname));
      for (const name of oldFiles) expect(files).not.toContain(name);
      expect(files.filter((f) => f.startsWith('temp-'))).toEqual([]);
      const [baseName] = entryNames(manifest, 'b');
      const baseBytes = await readFile(join(cfg.dir, cfg.appenddirname, baseName as string));
      expect(baseBytes.includes('AOFQ.SNAPSHOT')).toBe(preamble);
      expect(Number(node.aof.info().aof_base_size)).toBeGreaterThan(baseBytes.length - 1);
      await closeNode(node);

      const dir = join(cfg.dir, cfg.appenddirname);
      const single = redisCheck([join(dir, baseName as string)], dir);
      expect(single.out).toContain('is valid');
      expect(single.code).toBe(0);
      const whole = redisCheck([`${cfg.appendfilename}.manifest`], dir);
      expect(whole.out).toContain('All AOF files and manifest are valid');
      expect(whole.code).toBe(0);

      const reloaded = await open(cfg);
      expect(reloaded.digest()).toBe(live);
    }, 60_000);
  }

  it('keeps the history with aof-disable-auto-gc yes', async () => {
    const cfg = await tempConfig({ aofDisableAutoGc: true });
    const node = await open(cfg);
    await mixedLoad(node, prng(3), 500, 'a');
    const oldManifest = await manifestText(cfg);
    await node.rewrite();
    expect(await node.waitRewrite()).toBe(true);
    const manifest = await manifestText(cfg);
    const history = entryNames(manifest, 'h');
    expect(history.sort()).toEqual([...entryNames(oldManifest, 'b'), ...entryNames(oldManifest, 'i')].sort());
    const files = await readdir(join(cfg.dir, cfg.appenddirname));
    for (const name of history) expect(files).toContain(name);
    const live = node.digest();
    await closeNode(node);
    const reloaded = await open(cfg);
    expect(reloaded.digest()).toBe(live);
  }, 30_000);
});
