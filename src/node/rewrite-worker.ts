/**
 * The AOF rewrite's snapshotter: a worker thread that replays the log up to
 * the rotation point into fresh state machines and writes the new base from
 * them, so that the main thread's event loop only ever does small steps.
 * Consistency comes from the log itself: the files up to the rotation are
 * immutable, and what they replay to is, by construction, the state at that
 * point. Memory: the worker holds a second copy of the state while it runs
 * (as Redis's forked child can, in the worst case).
 *
 * This file is both the main thread's side (`workerSnapshotter`) and the
 * worker's script (run when loaded as a worker with our workerData).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { realFs } from '../aof/fs.js';
import { loadAofFiles } from '../aof/loader.js';
import {
  BaseFileWriter,
  type RewriteJob,
  type RewriteOutput,
  SNAPSHOT_CHUNK_BYTES,
  type Snapshotter,
  snapshotBeginRecord,
  snapshotChunkRecord,
} from '../aof/rewrite.js';
import { AofqError } from '../errors/index.js';
import { Queues } from '../queue/index.js';
import { Store } from '../store/index.js';
import type { LeaderRecord } from '../util/state.js';
import { replaySink, SNAPSHOT_SECTIONS } from './replay-sink.js';

const WORKER_TAG = 'aofq-rewrite-worker';

interface WorkerReply {
  ok: boolean;
  bytes?: number;
  records?: number;
  error?: string;
}

/** Load the job's files into fresh state machines and write the base. Runs in the worker (or inline in tests). */
export async function writeRewriteBase(job: RewriteJob): Promise<RewriteOutput & { records: number }> {
  const store = new Store();
  const queues = new Queues();
  const sink = replaySink(store, queues);
  const loaded = await loadAofFiles(realFs, job.files, sink);
  if (loaded.lastLsn !== job.lsn) {
    throw new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', {
      reason: `the files up to the rotation end at LSN ${loaded.lastLsn}, not ${job.lsn}`,
    });
  }
  const writer = await BaseFileWriter.create(realFs, job.tempPath, job.lsn, {
    incrementalFsync: job.incrementalFsync,
    nowMs: job.nowMs,
  });
  try {
    const add = async (record: LeaderRecord): Promise<void> => {
      if (writer.add(record)) await writer.flush();
    };
    if (job.format === 'preamble') {
      await add(snapshotBeginRecord(job.lsn, job.nowMs));
      for (const chunk of store.snapshotChunks(job.nowMs, SNAPSHOT_CHUNK_BYTES)) {
        await add(snapshotChunkRecord(SNAPSHOT_SECTIONS.store, chunk));
      }
      for (const chunk of queues.snapshotChunks(job.nowMs, SNAPSHOT_CHUNK_BYTES)) {
        await add(snapshotChunkRecord(SNAPSHOT_SECTIONS.queues, chunk));
      }
    } else {
      for (const record of store.snapshotRecords(job.nowMs)) await add(record);
      for (const record of queues.snapshotRecords(job.nowMs)) await add(record);
    }
    const bytes = await writer.finish();
    return { bytes, records: loaded.records };
  } catch (err) {
    await writer.abort();
    throw err;
  }
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
  if (entry === undefined)
    throw new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: 'tsx/esm/api not found' });
  tsxEsmApi = path.join(path.dirname(packageJson), entry);
  return tsxEsmApi;
}

/** How to start this file as a worker: compiled (.js) directly; under tsx/vitest (.ts) through tsx's loader. */
function spawnWorker(job: RewriteJob): Worker {
  const url = new URL(import.meta.url);
  const data = { tag: WORKER_TAG, job };
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData: data });
  const tsxApi = pathToFileURL(tsxEsmApiPath()).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

/** The snapshotter the node gives the AOF engine: one worker thread per rewrite. */
export function workerSnapshotter(): Snapshotter {
  return (job, signal) =>
    new Promise<RewriteOutput>((resolve, reject) => {
      if (signal.aborted) {
        reject(new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: 'aborted' }));
        return;
      }
      const worker = spawnWorker(job);
      let settled = false;
      const finish = (err: unknown, output?: RewriteOutput): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (output !== undefined) resolve(output);
        else reject(err);
      };
      const onAbort = (): void => {
        finish(new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: 'aborted' }));
        void worker.terminate();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      worker.on('message', (reply: WorkerReply) => {
        if (reply.ok && typeof reply.bytes === 'number') finish(null, { bytes: reply.bytes });
        else
          finish(
            new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: reply.error ?? 'the worker failed' }),
          );
      });
      worker.on('error', (err) =>
        finish(new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: String(err) }, { cause: err })),
      );
      worker.on('exit', (code) =>
        finish(
          new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', { reason: `the worker exited with code ${code}` }),
        ),
      );
    });
}

// --- the worker's side --------------------------------------------------------------

/**
 * The worker yields the CPU to the main thread: on Linux a nice value is per
 * thread, and setpriority(PRIO_PROCESS, 0) sets the calling thread's only.
 * Elsewhere it would renice the whole process, so it is done on Linux only.
 */
function lowerThreadPriority(): void {
  if (process.platform !== 'linux') return;
  try {
    os.setPriority(os.constants.priority.PRIORITY_LOW);
  } catch {
    // Not allowed here: run at the normal priority.
  }
}

const data = workerData as { tag?: string; job?: RewriteJob } | null;
if (!isMainThread && parentPort !== null && data?.tag === WORKER_TAG && data.job !== undefined) {
  const port = parentPort;
  lowerThreadPriority();
  writeRewriteBase(data.job).then(
    (output) =>
      port.postMessage({ ok: true, bytes: output.bytes, records: output.records } satisfies WorkerReply),
    (err: unknown) =>
      port.postMessage({
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      } satisfies WorkerReply),
  );
}
