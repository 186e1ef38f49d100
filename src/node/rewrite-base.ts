/**
 * The AOF rewrite's work: replay the log up to the rotation point into fresh
 * state machines and write the new base from them. It runs in the rewrite
 * helper process (rewrite-child.ts), so that the server's event loop only
 * ever does small steps. Consistency comes from the log itself: the files up
 * to the rotation are immutable, and what they replay to is, by construction,
 * the state at that point. Memory: the helper holds a second copy of the
 * state while it runs (as Redis's forked child can, in the worst case).
 */
import { realFs } from '../aof/fs.js';
import { loadAofFiles } from '../aof/loader.js';
import {
  BaseFileWriter,
  type RewriteJob,
  type RewriteOutput,
  SNAPSHOT_CHUNK_BYTES,
  snapshotBeginRecord,
  snapshotChunkRecord,
} from '../aof/rewrite.js';
import { AofqError } from '../errors/index.js';
import { Queues } from '../queue/index.js';
import { Store } from '../store/index.js';
import type { LeaderRecord } from '../util/state.js';
import { replaySink, SNAPSHOT_SECTIONS } from './replay-sink.js';

/** Load the job's files into fresh state machines and write the base. Runs in the helper (or inline in tests). */
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
