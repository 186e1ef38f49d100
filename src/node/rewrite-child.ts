/**
 * The rewrite helper: one child process per node, started when the node
 * opens (before the AOF is loaded), that runs every rewrite's snapshot work
 * (rewrite-base.ts) and waits, idle, between rewrites.
 *
 * Why a process, started early, and not a worker thread or a child per rewrite:
 * - A worker thread shares the process's V8 platform threads. Its GC work
 *   then runs at the server's priority, beside the event loop. On 2 cores an
 *   idle event loop was delayed by 13-16 ms beside an allocating worker, and
 *   by 6-11 ms beside the same work in a child process at nice 19 (the
 *   helper now runs at nice 10: see CHILD_NICE).
 * - A nice value is per thread on Linux, and a thread inherits its creator's.
 *   Only a process started under `nice` has all of its threads, V8's
 *   included, at the low priority.
 * - Spawning forks the server. fork() copies the page tables, and the event
 *   loop waits for it: 17 ms per GiB of RSS, measured here, and 75-170 ms at
 *   4 GiB. At open, before the load, the server is small, and the fork costs
 *   1.5-5.5 ms. If the helper dies, the next rewrite starts a new one and pays
 *   that cost once. This is logged.
 *
 * This file is both sides: the server's (`RewriteHelper`) and the child's
 * (run as a script with AOFQ_REWRITE_CHILD=1 and an IPC channel). The child
 * imports the state machines only when its first job arrives, so an idle
 * helper costs a bare Node process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { RewriteJob, RewriteOutput, Snapshotter } from '../aof/rewrite.js';
import { AofqError } from '../errors/index.js';
import { assert } from '../util/assert.js';
import type { Logger } from '../util/logger.js';

/** The environment variable that makes this file, run as a script, the rewrite helper. */
const CHILD_ENV = 'AOFQ_REWRITE_CHILD';
const JOB_TAG = 'aofq-rewrite-job';
/**
 * The helper's nice value. Under 50 in-process writers, a rewrite of 300k keys took 2.3-3.1 s at
 * nice 19, 2.7-3.1 s at 10 and 2.2-2.3 s at 0; the event loop's p99 delay was 5.5-6.2, 5.4-6.9
 * and 9.4-11.8 ms, and the writes ran at 158-196k, 148-176k and 90-112k/s. Beside two CPU-bound
 * nice-0 processes, 200k keys took 60 s at 19 (it ended only when they did), 9 s at 10 and 2 s
 * at 0. Nice 10 keeps 19's latency and throughput without being starved on a busy machine.
 */
export const CHILD_NICE = 10;

interface JobMessage {
  tag: typeof JOB_TAG;
  job: RewriteJob;
}

/** The helper's first message, once it runs (before any job), then its reply to each job. */
interface ReadyMessage {
  ready: true;
}

interface ReplyMessage {
  ok: boolean;
  bytes?: number;
  records?: number;
  error?: string;
}

function rewriteFailed(reason: string, cause?: unknown): AofqError {
  return new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason }, cause === undefined ? {} : { cause });
}

/** tsx's ESM API entry, read from its package's export map (only when running from .ts sources). */
let tsxEsmApi: string | null = null;
function tsxEsmApiPath(): string {
  if (tsxEsmApi !== null) return tsxEsmApi;
  const packageJson = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(packageJson, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } }>;
  };
  const entry = manifest.exports?.['./esm/api']?.import?.default;
  if (entry === undefined) throw rewriteFailed('tsx/esm/api not found');
  tsxEsmApi = path.join(path.dirname(packageJson), entry);
  return tsxEsmApi;
}

/** `nice` from coreutils on the PATH, or null; looked up once. */
let niceBinary: string | null | undefined;
function findNice(): string | null {
  if (niceBinary !== undefined) return niceBinary;
  niceBinary = null;
  if (process.platform === 'win32') return niceBinary;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(path.delimiter)) {
    const candidate = path.join(dir, 'nice');
    if (dir !== '' && existsSync(candidate)) {
      niceBinary = candidate;
      break;
    }
  }
  return niceBinary;
}

/**
 * How to start the helper at a low priority: at CHILD_NICE, where `nice`
 * exists. Not SCHED_IDLE (`chrt --idle`), and not nice 19: both delayed the
 * event loop a little less, but they leave the helper almost nothing of a
 * contended CPU (nice 19 weighs 15 against nice 0's 1024), so a busy machine
 * would starve the rewrite and the log would grow meanwhile.
 */
function lowPriorityPrefix(): string[] {
  const nice = findNice();
  return nice === null ? [] : [nice, '-n', String(CHILD_NICE)];
}

/** Node's arguments for the helper: compiled (.js) directly; from .ts sources through tsx's loader. */
function helperNodeArgs(): string[] {
  const url = new URL(import.meta.url);
  const script = fileURLToPath(url);
  // --expose-gc: the helper collects the state of a finished rewrite at once, not at V8's leisure.
  if (!script.endsWith('.ts')) return ['--expose-gc', script];
  const tsxApi = pathToFileURL(tsxEsmApiPath()).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return ['--expose-gc', '--input-type=module', '--eval', bootstrap];
}

function spawnHelper(): ChildProcess {
  const env = {
    ...process.env,
    [CHILD_ENV]: '1',
    // glibc: every allocation from 128 KiB up (the arena's 1 MiB chunks) gets its own mapping,
    // so a finished rewrite's state goes back to the system. With glibc's adaptive threshold,
    // an idle helper kept 213-247 MiB after a rewrite of 1M keys; with this one, 65-73 MiB.
    MALLOC_MMAP_THRESHOLD_: '131072',
  };
  const options = { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] as ('ignore' | 'inherit' | 'ipc')[] };
  const [program, ...args] = [...lowPriorityPrefix(), process.execPath, ...helperNodeArgs()];
  assert(program !== undefined, 'no program');
  return spawn(program, args, options);
}

/** A child process that never keeps the server alive by itself. */
function unref(child: ChildProcess): void {
  child.unref();
  (child.channel as { unref?: () => void } | undefined)?.unref?.();
}

function ref(child: ChildProcess): void {
  child.ref();
  (child.channel as { ref?: () => void } | undefined)?.ref?.();
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null && child.connected;
}

/**
 * The server's side. `snapshotter` is what the AOF engine is given; it runs
 * one job at a time, which the engine guarantees (one rewrite at a time).
 */
export class RewriteHelper {
  private child: ChildProcess | null = null;
  private childReady: Promise<number> = Promise.resolve(0);
  private childExited: Promise<void> = Promise.resolve();
  private running = false;
  private closed = false;
  /** Helpers started so far (1 unless one died). */
  spawned = 0;

  private constructor(private readonly logger: Logger) {}

  /** Start the helper now, while the process is small (see the module comment). */
  static start(logger: Logger): RewriteHelper {
    const helper = new RewriteHelper(logger);
    helper.ensureChild();
    return helper;
  }

  /** The helper's process id, or null when none is running. */
  get pid(): number | null {
    return this.child !== null && alive(this.child) ? (this.child.pid ?? null) : null;
  }

  private ensureChild(): ChildProcess {
    if (this.child !== null && alive(this.child)) return this.child;
    if (this.spawned > 0) {
      this.logger.warn(
        { rss: process.memoryUsage.rss() },
        'The AOF rewrite helper is gone; starting a new one (the fork copies this process page tables)',
      );
    }
    const child = spawnHelper();
    this.spawned++;
    this.child = child;
    this.childExited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.childReady = new Promise((resolve, reject) => {
      const onMessage = (message: unknown): void => {
        if ((message as Partial<ReadyMessage>).ready !== true) return;
        child.off('message', onMessage);
        resolve(child.pid ?? 0);
      };
      child.on('message', onMessage);
      child.once('exit', (code, sig) =>
        reject(rewriteFailed(`the rewrite helper exited with ${sig ?? `code ${code}`}`)),
      );
    });
    this.childReady.catch(() => undefined); // nobody need wait for it; a job sees the exit itself
    // A helper that cannot start reports it through 'error'; a running job is failed by its own listener.
    child.on('error', () => undefined);
    child.on('exit', () => {
      if (this.child === child) this.child = null;
    });
    unref(child);
    return child;
  }

  /** Resolves with the helper's pid once it runs (for tests and diagnostics); rejects if it exits first. */
  ready(): Promise<number> {
    return this.childReady;
  }

  readonly snapshotter: Snapshotter = (job, signal) =>
    new Promise<RewriteOutput>((resolve, reject) => {
      if (this.closed || signal.aborted) {
        reject(rewriteFailed('aborted'));
        return;
      }
      if (this.running) {
        reject(rewriteFailed('the rewrite helper is busy'));
        return;
      }
      let child: ChildProcess;
      try {
        child = this.ensureChild();
      } catch (err) {
        reject(rewriteFailed(String(err), err));
        return;
      }
      this.running = true;
      ref(child); // a rewrite in flight keeps the server's event loop alive
      const finish = (err: unknown, output?: RewriteOutput): void => {
        if (!this.running) return;
        this.running = false;
        signal.removeEventListener('abort', onAbort);
        child.off('message', onMessage);
        child.off('error', onError);
        child.off('exit', onExit);
        unref(child);
        if (output !== undefined) resolve(output);
        else reject(err);
      };
      const onAbort = (): void => {
        // The helper may be mid-write: it dies, and the engine removes the temp file.
        child.kill('SIGKILL');
        finish(rewriteFailed('aborted'));
      };
      const onMessage = (message: unknown): void => {
        if ((message as Partial<ReadyMessage>).ready === true) return;
        const reply = message as ReplyMessage;
        if (reply.ok && typeof reply.bytes === 'number') finish(null, { bytes: reply.bytes });
        else finish(rewriteFailed(reply.error ?? 'the rewrite helper failed'));
      };
      const onError = (err: Error): void => finish(rewriteFailed(String(err), err));
      const onExit = (code: number | null, sig: NodeJS.Signals | null): void =>
        finish(rewriteFailed(`the rewrite helper exited with ${sig ?? `code ${code}`}`));
      signal.addEventListener('abort', onAbort, { once: true });
      child.on('message', onMessage);
      child.on('error', onError);
      child.on('exit', onExit);
      child.send({ tag: JOB_TAG, job } satisfies JobMessage, (err) => {
        if (err !== null) finish(rewriteFailed(String(err), err));
      });
    });

  /** Stop the helper (the node is closing) and wait for it to be gone. A job in flight is aborted by the engine first. */
  async close(): Promise<void> {
    this.closed = true;
    const child = this.child;
    this.child = null;
    if (child === null) return;
    if (child.exitCode === null && child.signalCode === null) {
      ref(child); // else an unreferenced child's exit may never be seen before this process exits
      child.kill('SIGKILL');
    }
    await this.childExited;
  }
}

// --- the child's side --------------------------------------------------------------

/**
 * The helper: take a job, write the base, reply, forget the state, wait for
 * the next. If the server dies (the IPC channel closes), the temp file of a
 * job in flight is removed and the helper exits: a rewrite is never finished
 * without a server to install it.
 */
function runHelper(): void {
  const send = process.send?.bind(process);
  if (send === undefined) return;
  let tempPath: string | null = null;
  send({ ready: true } satisfies ReadyMessage);
  process.on('disconnect', () => {
    if (tempPath !== null) rmSync(tempPath, { force: true });
    process.exit(1);
  });
  const collect = (globalThis as { gc?: () => void }).gc;
  process.on('message', (message: unknown) => {
    const request = message as JobMessage;
    if (request.tag !== JOB_TAG || tempPath !== null) process.exit(2);
    tempPath = request.job.tempPath;
    const reply = (body: ReplyMessage): void => {
      // Written and fsynced, or removed by the writer's abort: the server owns the path now.
      tempPath = null;
      send(body, () => collect?.());
    };
    import('./rewrite-base.js')
      .then(({ writeRewriteBase }) => writeRewriteBase(request.job))
      .then(
        (output) => reply({ ok: true, bytes: output.bytes, records: output.records }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
  });
}

if (process.env[CHILD_ENV] === '1' && process.send !== undefined) {
  delete process.env[CHILD_ENV];
  runHelper();
}
