/**
 * AOF rewrite failure handling, with an injected snapshotter (the helper's
 * code run inline, wrapped with faults): failed rewrites leave the old files
 * serving and no temp file; repeated failures open several incr files that the
 * next success collapses; automatic rewrites back off after 3 failures in a
 * row and a manual one resets the count; a full disk is refused up front; a
 * second rewrite is refused while one runs; close aborts a running rewrite;
 * leftovers of a crashed rewrite go at the next one.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { realFs } from '../../src/aof/fs.js';
import type { RewriteJob, Snapshotter } from '../../src/aof/rewrite.js';
import { AofqNode } from '../../src/node/node.js';
import { writeRewriteBase } from '../../src/node/rewrite-base.js';

const dirs: string[] = [];
const nodes: AofqNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempConfig(overrides: Partial<AofConfig> = {}): Promise<AofConfig> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-rwfault-'));
  dirs.push(dir);
  return { ...DEFAULT_AOF_CONFIG, dir, ...overrides };
}

const b = (...args: (string | number)[]): Buffer[] => args.map((a) => Buffer.from(String(a)));
const inline: Snapshotter = async (job) => writeRewriteBase(job);

/** A snapshotter that fails while `failing` is true, after writing part of the temp file. */
function flaky(): { snapshotter: Snapshotter; calls: RewriteJob[]; setFailing(on: boolean): void } {
  let failing = true;
  const calls: RewriteJob[] = [];
  return {
    calls,
    setFailing: (on) => {
      failing = on;
    },
    snapshotter: async (job, signal) => {
      calls.push(job);
      if (!failing) return inline(job, signal);
      await writeFile(job.tempPath, 'partial base');
      throw new Error('injected snapshot failure');
    },
  };
}

async function open(cfg: AofConfig, snapshotter: Snapshotter, rewriteCronMs = 60_000): Promise<AofqNode> {
  const node = await AofqNode.open(cfg, { snapshotter, rewriteCronMs });
  nodes.push(node);
  return node;
}

async function reopenDigest(node: AofqNode, cfg: AofConfig): Promise<string> {
  await node.close();
  nodes.splice(nodes.indexOf(node), 1);
  const again = await open(cfg, inline);
  return again.digest();
}

function dirOf(cfg: AofConfig): string {
  return join(cfg.dir, cfg.appenddirname);
}

async function manifest(cfg: AofConfig): Promise<string> {
  return readFile(join(dirOf(cfg), `${cfg.appendfilename}.manifest`), 'utf8');
}

function count(text: string, type: 'b' | 'h' | 'i'): number {
  return text.split('\n').filter((line) => new RegExp(`^file \\S+ seq \\d+ type ${type}\\b`).test(line))
    .length;
}

/** Poll `check` every 10 ms until it holds or `ms` pass. */
async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

describe('AOF rewrite failures', () => {
  it('repeated failures open several incr files, leave no temp file; the next success collapses them', async () => {
    const cfg = await tempConfig();
    const fault = flaky();
    const node = await open(cfg, fault.snapshotter);
    for (let round = 0; round < 3; round++) {
      await node.command(b('SET', `k${round}`, `v${round}`));
      expect((await node.rewrite()).status).toBe('started');
      expect(await node.waitRewrite()).toBe(false);
      await node.command(b('INCR', 'counter'));
    }
    const info = node.aof.info();
    expect(info.aof_last_bgrewrite_status).toBe('err');
    // Each BGREWRITEAOF resets the count first: a manual rewrite starts afresh.
    expect(info.aof_rewrites_consecutive_failures).toBe(1);
    expect(info.aof_rewrites).toBe(3);
    expect(count(await manifest(cfg), 'i')).toBe(4);
    expect((await readdir(dirOf(cfg))).filter((f) => f.startsWith('temp-'))).toEqual([]);

    fault.setFailing(false);
    await node.rewrite();
    expect(await node.waitRewrite()).toBe(true);
    const after = await manifest(cfg);
    expect(count(after, 'b')).toBe(1);
    expect(count(after, 'i')).toBe(1);
    expect(count(after, 'h')).toBe(0);
    expect(node.aof.info().aof_rewrites_consecutive_failures).toBe(0);
    expect(node.aof.info().aof_last_bgrewrite_status).toBe('ok');
    // The last job replayed all four incr files.
    expect(fault.calls.at(-1)?.files.filter((f) => f.type === 'i')).toHaveLength(4);
    const live = node.digest();
    expect(await reopenDigest(node, cfg)).toBe(live);
  });

  it('backs automatic rewrites off after 3 failures in a row; a manual rewrite resets the count', async () => {
    const cfg = await tempConfig({ autoAofRewriteMinSize: 0, autoAofRewritePercentage: 1 });
    const fault = flaky();
    const node = await open(cfg, fault.snapshotter, 15);
    await node.command(b('SET', 'grow', 'x'.repeat(200)));
    expect(await until(() => node.aof.info().aof_rewrites_consecutive_failures === 3, 5000)).toBe(true);
    // Backing off for a minute now: no fourth automatic attempt.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fault.calls).toHaveLength(3);
    expect(node.aof.info().aof_rewrites_consecutive_failures).toBe(3);
    await node.rewrite();
    await node.waitRewrite();
    expect(node.aof.info().aof_rewrites_consecutive_failures).toBe(1);
    expect(fault.calls).toHaveLength(4);
  });

  it('refuses a rewrite when the disk lacks room for the new base, before rotating', async () => {
    const cfg = await tempConfig();
    const node = await AofqNode.open(cfg, {
      snapshotter: inline,
      fs: { ...realFs, freeBytes: async () => 10 },
    });
    nodes.push(node);
    await node.command(b('SET', 'k', 'v'.repeat(100)));
    const before = await manifest(cfg);
    await expect(node.rewrite()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_NO_SPACE' });
    expect(await manifest(cfg)).toBe(before);
    expect(node.aof.info().aof_rewrite_in_progress).toBe(0);
  });

  it('refuses a second rewrite while one runs, and close aborts the running one and removes its temp file', async () => {
    const cfg = await tempConfig();
    let entered: () => void = () => {};
    const enteredPromise = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let tempPath = '';
    const held: Snapshotter = (job, signal) =>
      new Promise((_resolve, reject) => {
        tempPath = job.tempPath;
        void writeFile(job.tempPath, 'half').then(entered);
        signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      });
    const node = await open(cfg, held);
    await node.command(b('SET', 'k', 'v'));
    await node.rewrite();
    await enteredPromise;
    expect(node.aof.info().aof_rewrite_in_progress).toBe(1);
    expect(Number(node.aof.info().aof_current_rewrite_time_sec)).toBeGreaterThanOrEqual(0);
    await expect(node.rewrite()).rejects.toMatchObject({ code: 'AOFQ_ERR_AOF_REWRITE_IN_PROGRESS' });
    await node.close();
    nodes.splice(nodes.indexOf(node), 1);
    expect((await readdir(dirOf(cfg))).filter((f) => f.startsWith('temp-'))).toEqual([]);
    expect(tempPath).not.toBe('');
    const again = await open(cfg, inline);
    expect(String(await again.command(b('GET', 'k')))).toBe('v');
  });

  it('removes the leftovers of a crashed rewrite (temp files, a base the manifest never named)', async () => {
    const cfg = await tempConfig();
    const node = await open(cfg, inline);
    await node.command(b('SET', 'k', 'v'));
    await writeFile(join(dirOf(cfg), 'temp-rewriteaof-99.aof'), 'stale');
    await writeFile(join(dirOf(cfg), `${cfg.appendfilename}.77.base.aof`), 'stale');
    await node.rewrite();
    expect(await node.waitRewrite()).toBe(true);
    const files = await readdir(dirOf(cfg));
    expect(files).not.toContain('temp-rewriteaof-99.aof');
    expect(files).not.toContain(`${cfg.appendfilename}.77.base.aof`);
    expect(files.sort()).toEqual(
      [
        `${cfg.appendfilename}.manifest`,
        ...(await manifest(cfg))
          .split('\n')
          .map((line) => /^file (\S+)/.exec(line)?.[1])
          .filter((n): n is string => n !== undefined),
      ].sort(),
    );
  });
});
