/**
 * The rewrite helper process (src/node/rewrite-child.ts), for real: it is
 * started when the node opens, every thread of it runs at nice 10
 * (CHILD_NICE), one helper serves rewrite after rewrite, the event loop stays free while it rewrites
 * 200,000 keys, a helper killed between rewrites or during
 * one is replaced (the rewrite in flight fails with a coded error and leaves
 * no temp file), closing the node ends it, and a helper whose server is
 * SIGKILLed exits by itself.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, watch } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { TEMP_REWRITE_PREFIX } from '../../src/aof/rewrite.js';
import { AofqNode } from '../../src/node/node.js';
import { CHILD_NICE, type RewriteHelper } from '../../src/node/rewrite-child.js';
import type { Logger } from '../../src/util/logger.js';

const dirs: string[] = [];
const nodes: AofqNode[] = [];
afterEach(async () => {
  for (const node of nodes.splice(0)) await node.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function tempConfig(): Promise<AofConfig> {
  const dir = await mkdtemp(join(tmpdir(), 'aofq-helper-'));
  dirs.push(dir);
  return { ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'no' };
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const noop = (): void => undefined;
  return { warnings, debug: noop, info: noop, error: noop, warn: (_obj, msg) => warnings.push(String(msg)) };
}

async function openNode(cfg: AofConfig, logger?: Logger): Promise<AofqNode> {
  const node = await AofqNode.open(cfg, logger === undefined ? {} : { logger });
  nodes.push(node);
  return node;
}

function helperOf(node: AofqNode): RewriteHelper {
  const helper = node.rewriteHelper;
  if (helper === null) throw new Error('the node has no rewrite helper');
  return helper;
}

const b = (...args: (string | number)[]): Buffer[] => args.map((a) => Buffer.from(String(a)));

async function fill(node: AofqNode, keys: number): Promise<void> {
  for (let i = 0; i < keys; i++) await node.command(b('SET', `k${i}`, `v${i}`));
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** A process that is not our child has no exit event to await: poll, bounded. */
async function waitGone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!processExists(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return !processExists(pid);
}

/** The nice value of every thread of a process (Linux: field 19 of /proc/<pid>/task/<tid>/stat). */
function threadNiceValues(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[16]); // fields after the command name start at field 3
  });
}

describe('the rewrite helper process', () => {
  it.runIf(process.platform === 'linux' && existsSync('/usr/bin/nice'))(
    'is started by open, all of its threads run at CHILD_NICE, and glibc returns its freed chunks',
    async () => {
      const node = await openNode(await tempConfig());
      const pid = await helperOf(node).ready();
      expect(pid).not.toBe(process.pid);
      expect(readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).toBe('node');
      const nice = threadNiceValues(pid);
      // Node starts its V8 platform and libuv threads before any JavaScript runs.
      expect(nice.length).toBeGreaterThan(1);
      expect(new Set(nice)).toEqual(new Set([CHILD_NICE]));
      // The server's own threads keep their priority.
      expect(new Set(threadNiceValues(process.pid)).has(CHILD_NICE)).toBe(false);
      // glibc maps its arena chunks one by one, so a finished rewrite's memory goes back to the system
      // (bench figure, 1M keys: 65-73 MiB idle after a rewrite, against 213-247 MiB without).
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=131072');
    },
  );

  it('serves rewrite after rewrite from one process, and ends when the node closes', async () => {
    const cfg = await tempConfig();
    const node = await openNode(cfg);
    const helper = helperOf(node);
    const pid = await helper.ready();
    for (let round = 0; round < 3; round++) {
      await fill(node, 500);
      await node.rewrite();
      expect(await node.waitRewrite()).toBe(true);
      expect(helper.pid).toBe(pid);
    }
    expect(helper.spawned).toBe(1);
    await node.close();
    nodes.splice(nodes.indexOf(node), 1);
    expect(processExists(pid)).toBe(false);
    const again = await openNode(cfg);
    expect(again.store.size).toBe(500);
  });

  it('keeps the event loop free while it rewrites 200,000 keys', async () => {
    const node = await openNode(await tempConfig());
    await helperOf(node).ready();
    const value = Buffer.alloc(100, 0x63);
    for (let i = 0; i < 200_000; i += 1000)
      await Promise.all(
        Array.from({ length: 1000 }, (_, j) =>
          node.command([Buffer.from('SET'), Buffer.from(`k${i + j}`), value]),
        ),
      );
    // The time the loop was held: what a 1 ms timer's turns come late, summed over the rewrite.
    let heldMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      heldMs += Math.max(0, now - last - 1);
      last = now;
    }, 1);
    const started = performance.now();
    try {
      await node.rewrite();
      expect(await node.waitRewrite()).toBe(true);
    } finally {
      clearInterval(timer);
    }
    const rewriteMs = performance.now() - started;
    // Replayed and written on this thread, the same rewrite holds the loop for most of its
    // duration: a regression this test exists to catch. In the helper, only the rotation, the
    // job message, the rename and the manifest run here.
    // Measured: 0.90 on this thread; 0.11-0.15 in the helper on a quiet machine.
    expect(heldMs / rewriteMs).toBeLessThan(0.5);
  });

  it('is replaced when it dies between rewrites, with a warning', async () => {
    const logger = recordingLogger();
    const node = await openNode(await tempConfig(), logger);
    const helper = helperOf(node);
    const first = await helper.ready();
    process.kill(first, 'SIGKILL');
    expect(await waitGone(first, 5000)).toBe(true);
    await fill(node, 200);
    await node.rewrite();
    expect(await node.waitRewrite()).toBe(true);
    expect(helper.spawned).toBe(2);
    expect(helper.pid).not.toBe(first);
    expect(logger.warnings.some((w) => w.includes('rewrite helper is gone'))).toBe(true);
  });

  it('fails the rewrite it was running when killed, leaves no temp file, and the next rewrite succeeds', async () => {
    const cfg = await tempConfig();
    const node = await openNode(cfg);
    const helper = helperOf(node);
    // About 50 MB of base to write, so that the helper is still at it when it is killed.
    const value = Buffer.alloc(1000, 0x61);
    for (let i = 0; i < 50_000; i += 500)
      await Promise.all(
        Array.from({ length: 500 }, (_, j) =>
          node.command([Buffer.from('SET'), Buffer.from(`k${i + j}`), value]),
        ),
      );
    const pid = await helper.ready();
    const aofDir = join(cfg.dir, cfg.appenddirname);
    // Killed once the helper has the job: when its temp file appears.
    const watcher = watch(aofDir);
    const tempCreated = new Promise<void>((resolve) =>
      watcher.on('change', (_event, name) => {
        if (String(name).startsWith(TEMP_REWRITE_PREFIX)) resolve();
      }),
    );
    await node.rewrite();
    await tempCreated;
    watcher.close();
    process.kill(pid, 'SIGKILL');
    expect(await node.waitRewrite()).toBe(false);
    const info = node.aof.info();
    expect(info.aof_last_bgrewrite_status).toBe('err');
    expect((await readdir(aofDir)).filter((f) => f.startsWith('temp-'))).toEqual([]);
    await node.rewrite();
    expect(await node.waitRewrite()).toBe(true);
    expect(node.aof.info().aof_last_bgrewrite_status).toBe('ok');
    expect(helper.spawned).toBe(2);
  });

  it('never keeps its server alive, and close() waits for its exit even when nothing else is pending', async () => {
    const cfg = await tempConfig();
    const node = `${JSON.stringify(new URL('../../src/node/node.ts', import.meta.url).href)}`;
    const script = [
      `import { AofqNode } from ${node};`,
      `const node = await AofqNode.open(${JSON.stringify(cfg)});`,
      "await node.command([Buffer.from('SET'), Buffer.from('k'), Buffer.from('v')]);",
      'await node.rewrite();',
      "if (!(await node.waitRewrite())) throw new Error('rewrite failed');",
      'const pid = await node.rewriteHelper.ready();',
      'await node.close();',
      'process.stdout.write(String(pid));',
    ].join('\n');
    const run = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    run.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    // Exit code 13 would be Node's "unsettled top-level await": a close() that never saw the helper exit.
    const code = await new Promise((resolve) => run.once('exit', resolve));
    expect(code).toBe(0);
    const helperPid = Number(out);
    expect(helperPid).toBeGreaterThan(0);
    expect(processExists(helperPid)).toBe(false);
  });

  it('exits by itself when its server is SIGKILLed', async () => {
    const cfg = await tempConfig();
    const script = [
      `import { AofqNode } from ${JSON.stringify(new URL('../../src/node/node.ts', import.meta.url).href)};`,
      // The helper never keeps its server alive: this timer does, as a server's sockets would.
      'setInterval(() => undefined, 1000);',
      `const node = await AofqNode.open(${JSON.stringify(cfg)});`,
      'const pid = await node.rewriteHelper.ready();',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the child's own template string
      'process.stdout.write(`helper ${pid}\\n`);',
    ].join('\n');
    const server = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const helperPid = await new Promise<number>((resolve, reject) => {
        let out = '';
        server.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /helper (\d+)\n/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        server.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
      });
      expect(processExists(helperPid)).toBe(true);
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGKILL');
      await exited;
      expect(await waitGone(helperPid, 10_000)).toBe(true);
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
  });
});
