/**
 * The AOF engine: what the node layer calls. It owns the AOF directory's life
 * cycle around the writer: open (create the directory, load it through the
 * loader, create the first base and incr files of a new directory, or continue
 * the last incr file of ours), rotation to a new incr file, INFO persistence,
 * and close. Appending, group commit, fsync policies and error recovery are
 * the writer's (writer.ts).
 *
 * Durability contract (waitDurable):
 *  - `always`:   resolves once the record's batch is written and fdatasync'ed.
 *  - `everysec`: resolves once the background fdatasync (at most one a second)
 *                covers the record; waitWritten resolves once it is written,
 *                which is when Redis replies under everysec.
 *  - `no`:       resolves once the record is written: `no` is NEVER durable;
 *                only rotation and close fsync.
 * A record whose wait resolved under always/everysec is never lost, whatever
 * write or fsync errors follow.
 */
import * as path from 'node:path';
import { AofqError } from '../errors/index.js';
import type { Arg } from '../resp/encode.js';
import { assert } from '../util/assert.js';
import { type Clock, systemClock } from '../util/clock.js';
import { type Logger, silentLogger } from '../util/logger.js';
import type { AofConfig, AppendFsync } from './config.js';
import { baseFileName, encodeFileHeader, type FileKind, FORMAT_VERSION, incrFileName } from './format.js';
import { type AofFile, type FsLayer, realFs } from './fs.js';
import { type InfoFields, persistenceInfo } from './info.js';
import { aofDirPath, type LoadResult, type LoadSink, listAofFiles, loadAof } from './loader.js';
import {
  baseEntry,
  incrEntries,
  type Manifest,
  type ManifestEntry,
  nextSequence,
  persistManifest,
  readManifest,
} from './manifest.js';
import { AofWriter, type RotatedFile, type WriterTiming } from './writer.js';

export interface AofEngineOptions {
  fs?: FsLayer;
  logger?: Logger;
  clock?: Clock;
  /** Shorter timers for tests. */
  timing?: Partial<WriterTiming>;
}

type EngineState = 'new' | 'loading' | 'open' | 'closing' | 'closed';

export interface LoadProgress {
  loading: boolean;
  doneBytes: number;
  totalBytes: number;
}

export class AofEngine {
  private readonly cfg: AofConfig;
  private readonly fs: FsLayer;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly timing: Partial<WriterTiming>;
  private readonly dirPath: string;
  private state: EngineState = 'new';
  private writer: AofWriter | null = null;
  private manifest: Manifest = { entries: [] };
  private policy: AppendFsync;
  private progress: LoadProgress = { loading: false, doneBytes: 0, totalBytes: 0 };
  /** Bytes of the listed files other than the one being appended to. */
  private otherFilesBytes = 0;
  private baseBytes = 0;
  private rotating: Promise<void> | null = null;
  private closePromise: Promise<void> | null = null;
  /** appendonly=false: LSNs without a disk (tests of the in-memory path only). */
  private memoryLsn = 0;
  private loadResult: LoadResult | null = null;
  private starting: Promise<void> | null = null;
  private closeRequested = false;

  /** Create an engine that has not loaded yet; `start` loads it. INFO works meanwhile (`loading:1`). */
  static create(cfg: AofConfig, opts: AofEngineOptions = {}): AofEngine {
    return new AofEngine(cfg, opts);
  }

  /** Create and start: load the directory into `sink`, then open it for appends. */
  static async open(cfg: AofConfig, opts: AofEngineOptions, sink: LoadSink): Promise<AofEngine> {
    const engine = new AofEngine(cfg, opts);
    await engine.start(sink);
    return engine;
  }

  private constructor(cfg: AofConfig, opts: AofEngineOptions) {
    this.cfg = cfg;
    this.fs = opts.fs ?? realFs;
    this.logger = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
    this.timing = opts.timing ?? {};
    this.dirPath = aofDirPath(cfg);
    this.policy = cfg.appendfsync;
  }

  start(sink: LoadSink): Promise<void> {
    assert(this.state === 'new', 'start once');
    this.state = 'loading';
    this.starting = this.load(sink);
    return this.starting;
  }

  private async load(sink: LoadSink): Promise<void> {
    if (!this.cfg.appendonly) {
      this.state = 'open';
      return;
    }
    this.progress = { loading: true, doneBytes: 0, totalBytes: 0 };
    try {
      await this.fs.mkdirp(this.dirPath);
      await this.removeInterruptedInit();
      const result = await loadAof(
        this.cfg,
        this.fs,
        {
          record: (argv, lsn) => sink.record(argv, lsn),
          progress: (doneBytes, totalBytes) => {
            this.progress = { loading: true, doneBytes, totalBytes };
            sink.progress?.(doneBytes, totalBytes);
          },
        },
        this.logger,
      );
      this.loadResult = result;
      this.progress = { loading: false, doneBytes: result.totalBytes, totalBytes: result.totalBytes };
      const writer = await this.openForAppend(result);
      if (this.closeRequested) {
        await writer.close();
        this.state = 'closed';
        return;
      }
      this.writer = writer;
      this.state = 'open';
    } catch (err) {
      this.state = 'closed';
      this.progress = { ...this.progress, loading: false };
      throw err;
    }
  }

  // --- the node layer's calls -------------------------------------------------------

  /** False while writes are refused (write/fsync error, closing): check before applying a command. */
  get writable(): boolean {
    if (this.state !== 'open') return false;
    return this.writer === null || this.writer.writable;
  }

  /**
   * Encode and buffer one record; returns its LSN. Synchronous. Throws
   * AOFQ_ERR_AOF_WRITE_FAILED while !writable, AOFQ_ERR_AOF_CLOSED once closed.
   */
  append(record: readonly Arg[]): number {
    if (this.writer !== null && this.state === 'open') return this.writer.append(record);
    this.checkAppendable();
    return ++this.memoryLsn;
  }

  /** Fast path for a record that is already RESP (a follower's stream, say). */
  appendEncoded(resp: Buffer): number {
    if (this.writer !== null && this.state === 'open') return this.writer.appendEncoded(resp);
    this.checkAppendable();
    return ++this.memoryLsn;
  }

  /** See the durability contract at the top of this file. */
  waitDurable(lsn: number): Promise<void> {
    if (this.writer === null) return Promise.resolve();
    return this.writer.waitDurable(lsn);
  }

  /** Resolves once the record is handed to the OS (write(2) returned): Redis's reply point under everysec/no. */
  waitWritten(lsn: number): Promise<void> {
    if (this.writer === null) return Promise.resolve();
    return this.writer.waitWritten(lsn);
  }

  /** Resolves once the record is fdatasync'ed, whatever the policy (under `no`: at rotation or close). */
  waitFsynced(lsn: number): Promise<void> {
    if (this.writer === null) return Promise.resolve();
    return this.writer.waitFsynced(lsn);
  }

  /** Write and fsync everything appended so far, whatever the policy. */
  sync(): Promise<void> {
    if (this.writer === null) return Promise.resolve();
    return this.writer.sync();
  }

  /** The last write or fsync error, as text ("ENOSPC: no space left on device, write"); null if none yet. */
  get lastWriteError(): string | null {
    return this.writer?.stats().lastWriteError ?? null;
  }

  get lastLsn(): number {
    return this.writer?.lastLsn ?? this.memoryLsn;
  }
  get writtenLsn(): number {
    return this.writer?.writtenLsn ?? this.memoryLsn;
  }
  get fsyncedLsn(): number {
    return this.writer?.fsyncedLsn ?? this.memoryLsn;
  }
  get appendFsync(): AppendFsync {
    return this.policy;
  }
  /** Name of the incr file being appended to. */
  get currentFileName(): string | null {
    return this.writer?.currentFileName ?? null;
  }
  get dirPathName(): string {
    return this.dirPath;
  }
  /** What the load found (truncation, import). Null before start. */
  get lastLoad(): LoadResult | null {
    return this.loadResult;
  }

  /** CONFIG SET appendfsync. */
  setAppendFsync(policy: AppendFsync): void {
    assert(policy === 'always' || policy === 'everysec' || policy === 'no', 'appendfsync policy');
    this.policy = policy;
    this.writer?.setAppendFsync(policy);
  }

  get loadProgress(): LoadProgress {
    return { ...this.progress };
  }

  /** INFO persistence fields (Redis's names; see info.ts). */
  info(): InfoFields {
    const w = this.writer;
    const stats = w?.stats();
    return persistenceInfo({
      loading: this.progress.loading,
      aofEnabled: this.cfg.appendonly,
      lastWriteStatus: stats?.lastWriteStatus ?? 'ok',
      currentSize: this.otherFilesBytes + (stats?.fileSize ?? 0),
      baseSize: this.baseBytes,
      bufferLength: stats?.bufferLength ?? 0,
      pendingBioFsync: stats?.pendingFsync ?? 0,
      delayedFsync: stats?.delayedFsync ?? 0,
      lastLsn: this.lastLsn,
      writtenLsn: this.writtenLsn,
      fsyncedLsn: this.fsyncedLsn,
      lastFsyncLatencyUs: stats?.lastFsyncLatencyUs ?? 0,
    });
  }

  /**
   * Start a new incr file: everything written so far is fsynced in the old
   * one; the new one (next seq, header lsn = last LSN of the old one) is
   * created, fsynced and named by a persisted manifest before any record goes
   * to it. Concurrent calls run one after the other.
   */
  rotate(): Promise<void> {
    const run = async (): Promise<void> => {
      if (!this.cfg.appendonly && this.state === 'open') return; // no files to rotate
      const writer = this.requireOpenWriter();
      const seq = nextSequence(this.manifest);
      let previousBytes = 0;
      try {
        await writer.rotate(async (boundaryLsn) => {
          previousBytes = writer.currentFileSize;
          const created = await this.createIncr(seq, boundaryLsn);
          this.otherFilesBytes += previousBytes;
          return created;
        });
      } catch (err) {
        if (err instanceof AofqError) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        throw new AofqError(
          'AOFQ_ERR_AOF_WRITE_FAILED',
          { reason: `rotation failed: ${reason}` },
          { cause: err },
        );
      }
    };
    const previous = this.rotating ?? Promise.resolve();
    const next = previous.then(run, run);
    this.rotating = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Flush, fsync, close. Later appends throw AOFQ_ERR_AOF_CLOSED. Rejects if the last data could not be written. */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    const run = async (): Promise<void> => {
      if (this.state === 'new') {
        this.state = 'closed';
        return;
      }
      if (this.state === 'loading') {
        this.closeRequested = true;
        await this.starting?.catch(() => undefined);
        this.state = 'closed';
        return;
      }
      this.state = 'closing';
      try {
        await this.rotating?.catch(() => undefined);
        await this.writer?.close();
      } finally {
        this.state = 'closed';
      }
    };
    this.closePromise = run();
    return this.closePromise;
  }

  // --- opening -------------------------------------------------------------------

  private checkAppendable(): void {
    if (this.state === 'closing' || this.state === 'closed') throw new AofqError('AOFQ_ERR_AOF_CLOSED');
    if (this.state !== 'open') throw new AofqError('AOFQ_ERR_SERVER_LOADING');
  }

  private requireOpenWriter(): AofWriter {
    if (this.state !== 'open' || this.writer === null) throw new AofqError('AOFQ_ERR_AOF_CLOSED');
    return this.writer;
  }

  /**
   * A first start that crashed after creating its header-only base and incr
   * files but before persisting the manifest leaves files the loader refuses
   * (files, no manifest). Files that hold nothing but an LSN-0 header are
   * exactly that: remove them.
   */
  private async removeInterruptedInit(): Promise<void> {
    const manifest = await readManifest(this.fs, this.dirPath, this.cfg.appendfilename);
    if (manifest !== null) return;
    const files = await listAofFiles(this.fs, this.dirPath, this.cfg.appendfilename);
    if (files.length === 0 || files.length > 2) return;
    for (const f of files) {
      const bytes = await this.fs.readFile(path.join(this.dirPath, f.name));
      if (!bytes.equals(encodeFileHeader({ kind: f.kind, lsn: 0 }))) return;
    }
    for (const f of files) await this.fs.unlink(path.join(this.dirPath, f.name));
    await this.fs.fsyncDir(this.dirPath);
    this.logger.warn({ files: files.map((f) => f.name) }, 'Removed the files of an interrupted first start');
  }

  private async openForAppend(result: LoadResult): Promise<AofWriter> {
    if (result.manifest.entries.length === 0) return this.initialize();
    this.manifest = result.manifest;
    const base = baseEntry(this.manifest);
    const last = incrEntries(this.manifest).at(-1);
    this.baseBytes = base ? ((await this.fs.size(path.join(this.dirPath, base.name))) ?? 0) : 0;
    let lastLsn = result.lastLsn;
    const lastFile = result.lastFile;
    if (
      last !== undefined &&
      lastFile !== null &&
      lastFile.name === last.name &&
      lastFile.header !== null &&
      lastFile.header.kind === 'incr'
    ) {
      lastLsn = Math.max(lastLsn, lastFile.header.lsn);
      const filePath = path.join(this.dirPath, last.name);
      const file = await this.fs.open(filePath, 'append');
      try {
        const size = await file.size();
        assert(size === lastFile.size, `${last.name} is ${size} bytes, the loader left ${lastFile.size}`);
        // What the loader read may still be only in the page cache (after a process crash): make it durable.
        await file.datasync();
        this.otherFilesBytes = result.totalBytes - size;
        return this.makeWriter(file, last.name, size, lastLsn);
      } catch (err) {
        await file.close().catch(() => undefined);
        throw err;
      }
    }
    // No incr of ours to continue (a directory imported from Redis, or a base only): start one.
    this.otherFilesBytes = result.totalBytes;
    const seq = nextSequence(this.manifest);
    const created = await this.createIncr(seq, lastLsn);
    this.logger.info({ file: created.fileName, lsn: lastLsn }, 'Started a new AOF incr file');
    return this.makeWriter(created.file, created.fileName, created.size, lastLsn);
  }

  /** A new directory: Redis 7's first files, base seq 1 and incr seq 1, then the manifest. */
  private async initialize(): Promise<AofWriter> {
    const baseName = baseFileName(this.cfg.appendfilename, 1);
    const incrName = incrFileName(this.cfg.appendfilename, 1);
    const baseFile = await this.createFile(baseName, 'base', 0);
    await baseFile.file.close();
    const incr = await this.createFile(incrName, 'incr', 0);
    try {
      await this.fs.fsyncDir(this.dirPath);
      const manifest: Manifest = {
        formatVersion: FORMAT_VERSION,
        entries: [
          { name: baseName, seq: 1, type: 'b', startLsn: 0 },
          { name: incrName, seq: 1, type: 'i', startLsn: 0 },
        ],
        nextSeq: 2,
        baseSize: baseFile.size,
      };
      await persistManifest(this.fs, this.dirPath, this.cfg.appendfilename, manifest);
      this.manifest = manifest;
    } catch (err) {
      await incr.file.close().catch(() => undefined);
      throw err;
    }
    this.baseBytes = baseFile.size;
    this.otherFilesBytes = baseFile.size;
    this.logger.info({ dir: this.dirPath }, 'Created a new AOF directory');
    return this.makeWriter(incr.file, incrName, incr.size, 0);
  }

  private makeWriter(file: AofFile, fileName: string, size: number, lastLsn: number): AofWriter {
    return new AofWriter({
      file,
      fileName,
      size,
      lastLsn,
      policy: this.policy,
      timestamps: this.cfg.aofTimestampEnabled,
      clock: this.clock,
      logger: this.logger,
      timing: this.timing,
    });
  }

  /** A file holding only its header, fsynced, open for appending. A stale file of that name (never in a manifest) is emptied. */
  private async createFile(
    name: string,
    kind: FileKind,
    lsn: number,
  ): Promise<{ file: AofFile; fileName: string; size: number }> {
    const header = encodeFileHeader({ kind, lsn });
    const filePath = path.join(this.dirPath, name);
    const file = await this.fs.open(filePath, 'append');
    try {
      await file.truncate(0);
      let written = 0;
      for (let pass = 0; written < header.length; pass++) {
        assert(pass <= header.length, 'header write loop bound');
        const n = await file.write(written === 0 ? header : header.subarray(written));
        if (!(n > 0)) throw new Error(`short write of ${name}`);
        written += n;
      }
      await file.sync();
    } catch (err) {
      // Never named by a manifest: nothing refers to it.
      await file.close().catch(() => undefined);
      await this.fs.unlink(filePath).catch(() => undefined);
      throw err;
    }
    return { file, fileName: name, size: header.length };
  }

  /** Rotation's new incr file: created and fsynced, the directory fsynced, then the manifest persisted. */
  private async createIncr(seq: number, startLsn: number): Promise<RotatedFile> {
    const name = incrFileName(this.cfg.appendfilename, seq);
    const created = await this.createFile(name, 'incr', startLsn);
    try {
      await this.fs.fsyncDir(this.dirPath);
      const entry: ManifestEntry = { name, seq, type: 'i', startLsn };
      const next: Manifest = {
        ...this.manifest,
        formatVersion: this.manifest.formatVersion ?? FORMAT_VERSION,
        entries: [...this.manifest.entries, entry],
        nextSeq: seq + 1,
      };
      await persistManifest(this.fs, this.dirPath, this.cfg.appendfilename, next);
      this.manifest = next;
    } catch (err) {
      await created.file.close().catch(() => undefined);
      await this.fs.unlink(path.join(this.dirPath, name)).catch(() => undefined);
      throw err;
    }
    return created;
  }
}
