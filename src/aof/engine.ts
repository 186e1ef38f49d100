/**
 * The AOF engine: what the node layer calls. It owns the AOF directory's life
 * cycle around the writer: open (create the directory, load it through the
 * loader, create the first base and incr files of a new directory, or continue
 * the last incr file of ours), rotation to a new incr file, the AOF rewrite
 * (BGREWRITEAOF, auto-rewrite, history GC; the base itself comes from an
 * injected Snapshotter, see rewrite.ts), INFO persistence, and close. Appending, group commit, fsync policies and error recovery are
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
import { performance } from 'node:perf_hooks';
import { AofqError } from '../errors/index.js';
import type { Arg } from '../resp/encode.js';
import { assert } from '../util/assert.js';
import { type Clock, systemClock } from '../util/clock.js';
import { type Logger, silentLogger } from '../util/logger.js';
import type { AofConfig, AppendFsync } from './config.js';
import { baseFileName, encodeFileHeader, type FileKind, FORMAT_VERSION, incrFileName } from './format.js';
import { type AofFile, type FsLayer, realFs } from './fs.js';
import { type InfoFields, persistenceInfo } from './info.js';
import {
  aofDirPath,
  type FileToLoad,
  type LoadResult,
  type LoadSink,
  listAofFiles,
  loadAof,
} from './loader.js';
import {
  baseEntry,
  historyEntries,
  incrEntries,
  loadOrder,
  type Manifest,
  type ManifestEntry,
  nextSequence,
  persistManifest,
  readManifest,
} from './manifest.js';
import {
  autoRewriteDue,
  REWRITE_MESSAGES,
  type RewriteStart,
  rewriteBackoffMs,
  type Snapshotter,
  TEMP_REWRITE_PREFIX,
  tempRewriteName,
} from './rewrite.js';
import { AofWriter, type RotatedFile, type WriterTiming } from './writer.js';

export interface AofEngineOptions {
  fs?: FsLayer;
  logger?: Logger;
  clock?: Clock;
  /** Shorter timers for tests. */
  timing?: Partial<WriterTiming>;
  /** Produces rewrite bases; without one, `rewrite` throws AOFQ_ERR_AOF_REWRITE_UNAVAILABLE. */
  snapshotter?: Snapshotter;
  /** How often the auto-rewrite check runs (Redis's serverCron); default 1000 ms. */
  rewriteCronMs?: number;
  /** Called after every successful fdatasync of the incr file, with its latency in µs (metrics). */
  onFsync?: (latencyUs: number) => void;
}

/** How a rewrite was asked for: by BGREWRITEAOF (resets the failure count) or by the growth rule. */
type RewriteTrigger = 'manual' | 'auto';

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
  private readonly onFsync: ((latencyUs: number) => void) | undefined;
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

  // --- rewrite ---------------------------------------------------------------------
  private readonly snapshotter: Snapshotter | null;
  private readonly rewriteCronMs: number;
  private rewriteTimer: NodeJS.Timeout | null = null;
  /** Set synchronously when a rewrite is accepted; cleared when it ends. */
  private rewriteActive = false;
  private rewriteRun: Promise<boolean> | null = null;
  private rewriteScheduled = false;
  private rewriteAbort: AbortController | null = null;
  private rewriteStartedMs = 0;
  private lastRewriteTimeSec = -1;
  private lastRewriteStatus: 'ok' | 'err' = 'ok';
  private rewriteCount = 0;
  private rewriteFailures = 0;
  /** performance.now() before which automatic rewrites wait (the back-off after failures). */
  private autoRewriteNotBefore = 0;
  /** Redis's aof_rewrite_base_size: the AOF's size after the last rewrite (persisted in the manifest). */
  private rewriteBaseBytes = 0;

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
    this.onFsync = opts.onFsync;
    this.dirPath = aofDirPath(cfg);
    this.policy = cfg.appendfsync;
    this.snapshotter = opts.snapshotter ?? null;
    this.rewriteCronMs = opts.rewriteCronMs ?? 1000;
    assert(this.rewriteCronMs > 0, 'rewriteCronMs');
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
      this.startRewriteCron();
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
      baseSize: this.rewriteBaseBytes,
      bufferLength: stats?.bufferLength ?? 0,
      pendingBioFsync: stats?.pendingFsync ?? 0,
      delayedFsync: stats?.delayedFsync ?? 0,
      lastLsn: this.lastLsn,
      writtenLsn: this.writtenLsn,
      fsyncedLsn: this.fsyncedLsn,
      lastFsyncLatencyUs: stats?.lastFsyncLatencyUs ?? 0,
      rewrite: {
        inProgress: this.rewriteActive,
        scheduled: this.rewriteScheduled,
        lastTimeSec: this.lastRewriteTimeSec,
        currentTimeSec: this.rewriteActive
          ? Math.floor((performance.now() - this.rewriteStartedMs) / 1000)
          : -1,
        lastStatus: this.lastRewriteStatus,
        rewrites: this.rewriteCount,
        consecutiveFailures: this.rewriteFailures,
      },
    });
  }

  /**
   * Start a new incr file: everything written so far is fsynced in the old
   * one; the new one (next seq, header lsn = last LSN of the old one) is
   * created, fsynced and named by a persisted manifest before any record goes
   * to it. Concurrent calls run one after the other.
   */
  rotate(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.cfg.appendonly && this.state === 'open') return; // no files to rotate
      await this.rotateNow();
    });
  }

  /** Run `fn` after every rotation and manifest change before it, and before any after it. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.rotating ?? Promise.resolve();
    const next = previous.then(fn, fn);
    this.rotating = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Rotate now (inside `exclusive`). Returns the boundary LSN and the files that hold every record up to it. */
  private async rotateNow(): Promise<{ boundaryLsn: number; before: ManifestEntry[]; seq: number }> {
    const writer = this.requireOpenWriter();
    const seq = nextSequence(this.manifest);
    let previousBytes = 0;
    let boundary = -1;
    let before: ManifestEntry[] = [];
    try {
      await writer.rotate(async (boundaryLsn) => {
        previousBytes = writer.currentFileSize;
        boundary = boundaryLsn;
        before = loadOrder(this.manifest);
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
    assert(boundary >= 0, 'rotation reported its boundary');
    return { boundaryLsn: boundary, before, seq };
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
      this.stopRewriteCron();
      this.rewriteScheduled = false;
      this.rewriteAbort?.abort();
      try {
        await this.rewriteRun?.catch(() => undefined);
        await this.rotating?.catch(() => undefined);
        await this.writer?.close();
      } finally {
        this.state = 'closed';
      }
    };
    this.closePromise = run();
    return this.closePromise;
  }

  // --- rewrite --------------------------------------------------------------------

  /**
   * BGREWRITEAOF. Starts a rewrite in the background and resolves with
   * Redis's reply: `started`, or `scheduled` while the engine is still
   * loading. Throws AofqError: AOFQ_ERR_AOF_REWRITE_IN_PROGRESS while one
   * runs, AOFQ_ERR_AOF_NO_SPACE when the disk cannot hold the new base,
   * AOFQ_ERR_AOF_REWRITE_UNAVAILABLE without a snapshotter, AOFQ_ERR_AOF_CLOSED.
   * A manual request resets the count of failures in a row. `waitRewrite`
   * resolves when the rewrite ends.
   */
  async rewrite(): Promise<RewriteStart> {
    if (this.snapshotter === null || !this.cfg.appendonly) {
      throw new AofqError('AOFQ_ERR_AOF_REWRITE_UNAVAILABLE');
    }
    if (this.state === 'closing' || this.state === 'closed') throw new AofqError('AOFQ_ERR_AOF_CLOSED');
    if (this.rewriteActive) throw new AofqError('AOFQ_ERR_AOF_REWRITE_IN_PROGRESS');
    this.rewriteFailures = 0;
    this.autoRewriteNotBefore = 0;
    if (this.state !== 'open') {
      this.rewriteScheduled = true;
      return { status: 'scheduled', message: REWRITE_MESSAGES.scheduled };
    }
    await this.startRewrite('manual');
    return { status: 'started', message: REWRITE_MESSAGES.started };
  }

  /** True while a rewrite runs. */
  get rewriteInProgress(): boolean {
    return this.rewriteActive;
  }

  /**
   * Resolves once no rewrite runs or waits (a scheduled one has run): true if
   * the last rewrite installed a new base, false if it failed or there was none.
   */
  async waitRewrite(): Promise<boolean> {
    // Bounded: a scheduled rewrite starts once loading ends; each round awaits one run.
    for (let round = 0; round < 1000; round++) {
      if (this.rewriteRun !== null) return this.rewriteRun;
      if (!this.rewriteScheduled || this.state === 'closed')
        return this.lastRewriteStatus === 'ok' && this.rewriteCount > 0;
      if (this.state === 'loading' || this.state === 'new') await this.starting?.catch(() => undefined);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert(false, 'waitRewrite round bound');
  }

  /**
   * Accept a rewrite (marked active synchronously), check the free space,
   * then run it in the background. Resolves once it has started; rejects
   * (AOFQ_ERR_AOF_NO_SPACE) when it is refused.
   */
  private startRewrite(trigger: RewriteTrigger): Promise<void> {
    assert(!this.rewriteActive, 'one rewrite at a time');
    this.rewriteActive = true;
    this.rewriteScheduled = false;
    this.rewriteStartedMs = performance.now();
    const abort = new AbortController();
    this.rewriteAbort = abort;
    let started: () => void = () => {};
    let refused: (err: unknown) => void = () => {};
    const start = new Promise<void>((resolve, reject) => {
      started = resolve;
      refused = reject;
    });
    const run = async (): Promise<boolean> => {
      try {
        await this.checkRewriteSpace();
      } catch (err) {
        this.rewriteFailed(err, trigger);
        refused(err);
        return false;
      }
      this.rewriteCount++;
      started();
      return this.runRewrite(abort.signal, trigger);
    };
    this.rewriteRun = run().finally(() => {
      this.rewriteActive = false;
      this.rewriteRun = null;
      this.rewriteAbort = null;
    });
    return start;
  }

  /** The new base is at most about as large as the log it replaces (base + incr files). */
  private async checkRewriteSpace(): Promise<void> {
    const needed = this.otherFilesBytes + (this.writer?.currentFileSize ?? 0);
    const free = await this.fs.freeBytes(this.dirPath);
    if (free < needed) throw new AofqError('AOFQ_ERR_AOF_NO_SPACE', { free, needed });
  }

  private async runRewrite(signal: AbortSignal, trigger: RewriteTrigger): Promise<boolean> {
    const snapshotter = this.snapshotter;
    assert(snapshotter !== null, 'rewrite without a snapshotter');
    let tempPath: string | null = null;
    try {
      const nowMs = this.clock.nowMs();
      // 1. Rotate: the files up to the boundary are closed for good; writes go on into the new incr.
      const rotation = await this.exclusive(async () => {
        this.checkRewriteOpen();
        await this.removeRewriteLeftovers();
        return this.rotateNow();
      });
      tempPath = path.join(this.dirPath, tempRewriteName(rotation.seq));
      const files: FileToLoad[] = rotation.before.map((e) => ({
        path: path.join(this.dirPath, e.name),
        name: e.name,
        type: e.type,
        ...(e.startLsn !== undefined ? { startLsn: e.startLsn } : {}),
      }));
      this.logger.info(
        { lsn: rotation.boundaryLsn, files: files.length },
        'Background append only file rewriting started',
      );
      // 2. The snapshotter replays those files elsewhere and writes the base (fsynced) to tempPath.
      const output = await snapshotter(
        {
          files,
          lsn: rotation.boundaryLsn,
          tempPath,
          format: this.cfg.aofUseRdbPreamble ? 'preamble' : 'commands',
          incrementalFsync: this.cfg.aofRewriteIncrementalFsync,
          nowMs,
        },
        signal,
      );
      // 3. Install it: rename, then the manifest names it and turns the old files into history.
      const installedTemp = tempPath;
      await this.exclusive(async () => {
        this.checkRewriteOpen();
        await this.installBase(installedTemp, rotation.boundaryLsn, rotation.before, output.bytes);
      });
      tempPath = null;
      this.lastRewriteTimeSec = Math.floor((performance.now() - this.rewriteStartedMs) / 1000);
      this.lastRewriteStatus = 'ok';
      this.rewriteFailures = 0;
      this.autoRewriteNotBefore = 0;
      this.logger.info(
        { bytes: output.bytes, lsn: rotation.boundaryLsn },
        'Background AOF rewrite finished successfully',
      );
    } catch (err) {
      if (tempPath !== null) await this.fs.unlink(tempPath).catch(() => undefined);
      this.rewriteFailed(err, trigger);
      return false;
    }
    // 4. History GC: a failure here leaves history entries that the next rewrite removes.
    if (!this.cfg.aofDisableAutoGc) {
      try {
        await this.exclusive(() => this.deleteHistory());
      } catch (err) {
        this.logger.warn(
          { err: String(err) },
          'Removing the AOF history files failed; the next rewrite retries',
        );
      }
    }
    return true;
  }

  private checkRewriteOpen(): void {
    if (this.state !== 'open') throw new AofqError('AOFQ_ERR_AOF_CLOSED');
  }

  private rewriteFailed(err: unknown, trigger: RewriteTrigger): void {
    this.lastRewriteStatus = 'err';
    this.rewriteFailures++;
    const backoff = rewriteBackoffMs(this.rewriteFailures);
    this.autoRewriteNotBefore = performance.now() + backoff;
    if (this.state === 'closing' || this.state === 'closed') return;
    this.logger.error(
      {
        err: err instanceof Error ? err.message : String(err),
        trigger,
        failures: this.rewriteFailures,
        backoffMs: backoff,
      },
      'Background AOF rewrite failed; the old files keep serving',
    );
  }

  /**
   * Temp files of interrupted rewrites, and AOF-named files the manifest does
   * not list (a base renamed just before a crash): never needed, removed.
   */
  private async removeRewriteLeftovers(): Promise<void> {
    const listed = new Set(this.manifest.entries.map((e) => e.name));
    const names = await this.fs.readdir(this.dirPath);
    const aofNames = new Set(
      (await listAofFiles(this.fs, this.dirPath, this.cfg.appendfilename)).map((f) => f.name),
    );
    let removed = 0;
    for (const name of names) {
      const stale = name.startsWith(TEMP_REWRITE_PREFIX) || (aofNames.has(name) && !listed.has(name));
      if (!stale) continue;
      await this.fs.unlink(path.join(this.dirPath, name)).catch(() => undefined);
      removed++;
    }
    if (removed > 0) {
      await this.fs.fsyncDir(this.dirPath);
      this.logger.warn({ removed }, 'Removed files left by an interrupted AOF rewrite');
    }
  }

  /** Rename the temp base into place and persist the manifest that names it. */
  private async installBase(
    tempPath: string,
    lsn: number,
    replaced: readonly ManifestEntry[],
    baseBytes: number,
  ): Promise<void> {
    const seq = nextSequence(this.manifest);
    const name = baseFileName(this.cfg.appendfilename, seq);
    const size = await this.fs.size(tempPath);
    if (size !== baseBytes) {
      throw new AofqError('AOFQ_ERR_AOF_REWRITE_FAILED', {
        reason: `the new base is ${size ?? 'missing'} bytes, the snapshotter wrote ${baseBytes}`,
      });
    }
    await this.fs.rename(tempPath, path.join(this.dirPath, name));
    await this.fs.fsyncDir(this.dirPath);
    const replacedNames = new Set(replaced.map((e) => e.name));
    const kept: ManifestEntry[] = [];
    for (const e of this.manifest.entries) {
      if (e.type === 'b' || (e.type === 'i' && replacedNames.has(e.name))) kept.push({ ...e, type: 'h' });
      else kept.push(e);
    }
    const current = this.writer?.currentFileName ?? null;
    let closedIncrBytes = 0;
    for (const e of kept) {
      if (e.type !== 'i' || e.name === current) continue;
      closedIncrBytes += (await this.fs.size(path.join(this.dirPath, e.name))) ?? 0;
    }
    const currentBytes = this.writer?.currentFileSize ?? 0;
    const rewriteBase = baseBytes + closedIncrBytes + currentBytes;
    const next: Manifest = {
      ...this.manifest,
      formatVersion: this.manifest.formatVersion ?? FORMAT_VERSION,
      entries: [{ name, seq, type: 'b', startLsn: lsn }, ...kept],
      nextSeq: seq + 1,
      baseSize: rewriteBase,
    };
    try {
      await persistManifest(this.fs, this.dirPath, this.cfg.appendfilename, next);
    } catch (err) {
      // The old manifest still rules; the renamed base is a leftover the next rewrite removes.
      await this.fs.unlink(path.join(this.dirPath, name)).catch(() => undefined);
      throw err;
    }
    this.manifest = next;
    this.baseBytes = baseBytes;
    this.otherFilesBytes = baseBytes + closedIncrBytes;
    this.rewriteBaseBytes = rewriteBase;
  }

  /** Delete the history files, then persist the manifest without them. */
  private async deleteHistory(): Promise<void> {
    const history = historyEntries(this.manifest);
    if (history.length === 0) return;
    for (const e of history) {
      try {
        await this.fs.unlink(path.join(this.dirPath, e.name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    const next: Manifest = { ...this.manifest, entries: this.manifest.entries.filter((e) => e.type !== 'h') };
    await persistManifest(this.fs, this.dirPath, this.cfg.appendfilename, next);
    this.manifest = next;
    this.logger.info({ files: history.map((e) => e.name) }, 'Removed the AOF history files');
  }

  private startRewriteCron(): void {
    if (this.snapshotter === null || !this.cfg.appendonly) return;
    this.rewriteTimer = setInterval(() => this.rewriteCron(), this.rewriteCronMs);
    this.rewriteTimer.unref();
    // A rewrite asked for while loading starts as soon as the engine is open.
    if (this.rewriteScheduled) setImmediate(() => this.rewriteCron());
  }

  private stopRewriteCron(): void {
    if (this.rewriteTimer !== null) clearInterval(this.rewriteTimer);
    this.rewriteTimer = null;
  }

  /** Redis's serverCron part: start a scheduled rewrite, or an automatic one when the AOF has grown enough. */
  private rewriteCron(): void {
    if (this.state !== 'open' || this.rewriteActive || !this.writable) return;
    let trigger: RewriteTrigger | null = null;
    if (this.rewriteScheduled) trigger = 'manual';
    else if (
      performance.now() >= this.autoRewriteNotBefore &&
      autoRewriteDue({
        currentSize: this.otherFilesBytes + (this.writer?.currentFileSize ?? 0),
        baseSize: this.rewriteBaseBytes,
        percentage: this.cfg.autoAofRewritePercentage,
        minSize: this.cfg.autoAofRewriteMinSize,
      })
    ) {
      trigger = 'auto';
      this.logger.info(
        {
          currentSize: this.otherFilesBytes + (this.writer?.currentFileSize ?? 0),
          baseSize: this.rewriteBaseBytes,
        },
        'Starting automatic rewriting of AOF',
      );
    }
    if (trigger === null) return;
    // Failures are counted and logged by startRewrite.
    this.startRewrite(trigger).catch(() => undefined);
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
    // Persisted by our rewrites, so that a restart does not count the incr files as growth.
    this.rewriteBaseBytes = this.manifest.baseSize ?? this.baseBytes;
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
    this.rewriteBaseBytes = baseFile.size;
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
      onFsync: this.onFsync,
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
