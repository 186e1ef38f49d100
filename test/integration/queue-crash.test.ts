/**
 * Crash test with real processes: on a queue with `durability: fsync` (and the
 * server's appendfsync at `no`, so nothing else syncs), every enqueue and
 * every ack that the child process saw acknowledged survives SIGKILL. The
 * child is killed at random moments, ten times over the same data directory.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { AofqNode } from '../../src/node/node.js';

const RUNS = 10;
const CHILD = join(import.meta.dirname, 'fixtures', 'queue-crash-child.ts');
let dir = '';
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Seen {
  enqueued: Map<string, string>;
  acked: Set<string>;
}

/** Start the child, let it work for a random while after READY, SIGKILL it, and return what it saw acknowledged. */
function runChild(run: number, killAfterLines: number): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(run)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const seen: Seen = { enqueued: new Map(), acked: new Set() };
    let stderr = '';
    let lines = 0;
    let ready = false;
    child.stderr?.on('data', (d) => {
      stderr += String(d);
    });
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line === 'READY') {
        ready = true;
        return;
      }
      const [kind, id, tag] = line.split(' ');
      if (kind === 'E' && id && tag) seen.enqueued.set(id, tag);
      else if (kind === 'A' && id) seen.acked.add(id);
      if (++lines === killAfterLines) child.kill('SIGKILL');
    });
    // Resolve once the process has exited AND every line it wrote was read:
    // lines still in the pipe were acknowledged before the kill, too.
    let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let closed = false;
    const settle = (): void => {
      if (exit === null || !closed) return;
      children.delete(child);
      if (exit.signal !== 'SIGKILL' || !ready)
        reject(new Error(`child ended with ${exit.code}/${exit.signal}: ${stderr}`));
      else resolve(seen);
    };
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      settle();
    });
    rl.on('close', () => {
      closed = true;
      settle();
    });
  });
}

describe('queue crash safety (durability: fsync, SIGKILL)', () => {
  it(`keeps every acknowledged enqueue and ack across ${RUNS} SIGKILLs`, async () => {
    dir = await mkdtemp(join(tmpdir(), 'aofq-qcrash-'));
    const allEnqueued = new Map<string, string>();
    const allAcked = new Set<string>();
    for (let run = 0; run < RUNS; run++) {
      const seen = await runChild(run, 20 + Math.floor(Math.random() * 400));
      expect(seen.enqueued.size).toBeGreaterThan(0);
      for (const [id, tag] of seen.enqueued) allEnqueued.set(id, tag);
      for (const id of seen.acked) allAcked.add(id);

      const node = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir, appendfsync: 'no' });
      try {
        for (const [id, tag] of allEnqueued) {
          const { job, state } = await node.queue({ op: 'getJob', queue: 'critical', id });
          const [r, n] = tag.split(':').map(Number);
          // JobJson carries data as its JSON text, as BullMQ's does.
          expect(JSON.parse(job.data)).toEqual({ run: r, n });
          if (allAcked.has(id)) expect(state).toBe('completed');
        }
      } finally {
        await node.close();
      }
    }
    expect(allAcked.size).toBeGreaterThan(0);
  }, 120_000);
});
