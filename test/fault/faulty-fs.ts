/**
 * FaultyFs: an FsLayer over realFs whose faults the test switches on and off.
 * - `spaceLeft`: bytes the disk still takes; a write that crosses it is short,
 *   the next one fails with ENOSPC (a disk filling up in the middle of a batch).
 * - `maxWriteBytes`: every write stores at most this many bytes (short writes).
 * - `datasyncError`: fdatasync/fsync fail with this code; with `dropPagesOnSyncError`
 *   the bytes written since the last good sync are zeroed first, as a kernel
 *   that dropped its dirty pages after a failed writeback would leave them.
 * - `holdDatasync()`: fdatasync/fsync calls wait until the test releases them (the
 *   writer's write(2) runs on the calling thread, as Redis's does: nothing to hold).
 * - `truncateError`: ftruncate fails with this code.
 * Counters record what the engine did. Only files opened through it are affected.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { AofFile, FsLayer, OpenMode } from '../../src/aof/fs.js';
import { realFs } from '../../src/aof/fs.js';

function errno(code: string, op: string): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(`${code}: injected fault, ${op}`);
  err.code = code;
  return err;
}

interface GateState {
  promise: Promise<void>;
  entered: () => void;
}

function makeGate(onRelease: () => void): { state: GateState; gate: Gate } {
  let release: () => void = () => {};
  let entered: () => void = () => {};
  const promise = new Promise<void>((r) => {
    release = r;
  });
  const enteredPromise = new Promise<void>((r) => {
    entered = r;
  });
  return {
    state: { promise, entered },
    gate: {
      entered: enteredPromise,
      release: () => {
        onRelease();
        release();
      },
    },
  };
}

export interface Gate {
  /** Resolves when a held call is waiting on the gate. */
  entered: Promise<void>;
  release(): void;
}

export class FaultyFs implements FsLayer {
  spaceLeft: number | null = null;
  maxWriteBytes: number | null = null;
  writeError: string | null = null;
  datasyncError: string | null = null;
  /** When set, `datasyncError` clears itself after this many failures. */
  datasyncErrorsLeft: number | null = null;
  dropPagesOnSyncError = false;
  truncateError: string | null = null;

  writes = 0;
  shortWrites = 0;
  failedWrites = 0;
  datasyncs = 0;
  failedDatasyncs = 0;
  truncates = 0;

  private gate: GateState | null = null;
  /** Per path: size at the last successful sync. */
  readonly syncedSize = new Map<string, number>();

  constructor(private readonly inner: FsLayer = realFs) {}

  /** Hold every fdatasync until `release()`; `entered` resolves when the first one arrives. */
  holdDatasync(): Gate {
    const { state, gate } = makeGate(() => {
      this.gate = null;
    });
    this.gate = state;
    return gate;
  }

  async open(path: string, mode: OpenMode): Promise<AofFile> {
    const file = await this.inner.open(path, mode);
    if (mode === 'read') return file;
    this.syncedSize.set(path, (await file.size()) ?? 0);
    return new FaultyFile(this, path, file);
  }

  /** Called by FaultyFile. */
  async beforeSync(path: string, file: AofFile): Promise<void> {
    this.datasyncs++;
    const gate = this.gate;
    if (gate !== null) {
      gate.entered();
      await gate.promise;
    }
    if (this.datasyncError !== null) {
      const code = this.datasyncError;
      this.failedDatasyncs++;
      if (this.datasyncErrorsLeft !== null && --this.datasyncErrorsLeft <= 0) {
        this.datasyncError = null;
        this.datasyncErrorsLeft = null;
      }
      if (this.dropPagesOnSyncError) {
        const synced = this.syncedSize.get(path) ?? 0;
        const size = await file.size();
        if (size > synced) await zeroRange(path, synced, size - synced);
      }
      throw errno(code, 'fdatasync');
    }
  }

  /** Called by FaultyFile: how many of `length` bytes this write may store, or an error code. */
  admitWrite(length: number): number | string {
    this.writes++;
    if (this.writeError !== null) {
      this.failedWrites++;
      return this.writeError;
    }
    let allowed = length;
    if (this.maxWriteBytes !== null) allowed = Math.min(allowed, this.maxWriteBytes);
    if (this.spaceLeft !== null) {
      if (this.spaceLeft <= 0) {
        this.failedWrites++;
        return 'ENOSPC';
      }
      allowed = Math.min(allowed, this.spaceLeft);
    }
    if (allowed < length) this.shortWrites++;
    return allowed;
  }

  /** Called by FaultyFile after a cut: nothing past `length` is synced any more. */
  truncated(path: string, length: number): void {
    const synced = this.syncedSize.get(path) ?? 0;
    if (synced > length) this.syncedSize.set(path, length);
  }

  consumed(bytes: number): void {
    if (this.spaceLeft !== null) this.spaceLeft -= bytes;
  }

  readFile(path: string): Promise<Buffer> {
    return this.inner.readFile(path);
  }
  readChunks(path: string, chunkBytes: number, start?: number): AsyncIterable<Buffer> {
    return this.inner.readChunks(path, chunkBytes, start);
  }
  size(path: string): Promise<number | null> {
    return this.inner.size(path);
  }
  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return this.inner.unlink(path);
  }
  mkdirp(path: string): Promise<void> {
    return this.inner.mkdirp(path);
  }
  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }
  truncate(path: string, length: number): Promise<void> {
    return this.inner.truncate(path, length);
  }
  fsyncDir(path: string): Promise<void> {
    return this.inner.fsyncDir(path);
  }
  freeBytes(path: string): Promise<number> {
    return this.inner.freeBytes(path);
  }
}

async function zeroRange(path: string, start: number, length: number): Promise<void> {
  const handle = await fsp.open(path, fs.constants.O_WRONLY);
  try {
    await handle.write(Buffer.alloc(length), 0, length, start);
  } finally {
    await handle.close();
  }
}

class FaultyFile implements AofFile {
  constructor(
    private readonly owner: FaultyFs,
    private readonly path: string,
    private readonly inner: AofFile,
  ) {}

  async write(buf: Buffer, position?: number): Promise<number> {
    const admitted = this.owner.admitWrite(buf.length);
    if (typeof admitted === 'string') throw errno(admitted, 'write');
    if (admitted === 0) return 0;
    const n = await this.inner.write(admitted < buf.length ? buf.subarray(0, admitted) : buf, position);
    this.owner.consumed(n);
    return n;
  }
  writeSync(buf: Buffer): number {
    const admitted = this.owner.admitWrite(buf.length);
    if (typeof admitted === 'string') throw errno(admitted, 'write');
    if (admitted === 0) return 0;
    const n = this.inner.writeSync(admitted < buf.length ? buf.subarray(0, admitted) : buf);
    this.owner.consumed(n);
    return n;
  }
  truncateSync(length: number): void {
    this.owner.truncates++;
    if (this.owner.truncateError !== null) throw errno(this.owner.truncateError, 'ftruncate');
    this.inner.truncateSync(length);
    this.owner.truncated(this.path, length);
  }
  async datasync(): Promise<void> {
    await this.owner.beforeSync(this.path, this.inner);
    const size = await this.inner.size();
    await this.inner.datasync();
    this.owner.syncedSize.set(this.path, size);
  }
  async sync(): Promise<void> {
    await this.owner.beforeSync(this.path, this.inner);
    const size = await this.inner.size();
    await this.inner.sync();
    this.owner.syncedSize.set(this.path, size);
  }
  async truncate(length: number): Promise<void> {
    this.owner.truncates++;
    if (this.owner.truncateError !== null) throw errno(this.owner.truncateError, 'ftruncate');
    await this.inner.truncate(length);
    this.owner.truncated(this.path, length);
  }
  size(): Promise<number> {
    return this.inner.size();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

// --- shared support for the AOF writer's tests ---------------------------------

/** Poll `condition` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = 5000,
  intervalMs = 2,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !condition(); i++) {
    if (Date.now() > deadline || i > 1_000_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Let the event loop turn `n` times (setImmediate), for checks that something did NOT happen. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** Run Debian's redis-check-aof on a file or manifest: exit status and output. */
export function redisCheckAof(target: string): { status: number | null; output: string } {
  const r = spawnSync('/usr/bin/redis-check-aof', [target], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
