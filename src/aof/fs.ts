/**
 * The file-system layer under the AOF engine. Everything the engine does to
 * disk goes through FsLayer, so that fault tests can inject ENOSPC, EIO and
 * short writes (test/fault) while every other test runs on the real disk.
 * `realFs` is the only implementation that production uses.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';

export interface AofFile {
  /** Write all of `buf` at the end (append mode) or at `position`. Resolves with the bytes written, which may be fewer (a short write). */
  write(buf: Buffer, position?: number): Promise<number>;
  /**
   * write(2) at the end (append mode), on the calling thread: returns the bytes written, which
   * may be fewer (a short write); throws the errno error. The incr writer uses it, as Redis does,
   * because a write into the page cache takes microseconds and a thread-pool round trip does not.
   */
  writeSync(buf: Buffer): number;
  /** ftruncate(2) on the calling thread (the writer's error path: cut off a half-written batch). */
  truncateSync(length: number): void;
  /** fdatasync(2). */
  datasync(): Promise<void>;
  /** fsync(2). */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export type OpenMode = 'append' | 'read' | 'create-exclusive' | 'truncate' | 'read-write';

export interface FsLayer {
  open(path: string, mode: OpenMode): Promise<AofFile>;
  /** The whole file (for small files: the manifest). */
  readFile(path: string): Promise<Buffer>;
  /** A file's bytes in chunks of at most `chunkBytes`, from `start`. */
  readChunks(path: string, chunkBytes: number, start?: number): AsyncIterable<Buffer>;
  /** Size in bytes, or null when the file does not exist. */
  size(path: string): Promise<number | null>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  mkdirp(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  truncate(path: string, length: number): Promise<void>;
  /** fsync a directory, so that a rename or a new file in it is durable. */
  fsyncDir(path: string): Promise<void>;
  /** Free bytes available to us on the file system that holds `path`. */
  freeBytes(path: string): Promise<number>;
}

const FLAGS: Record<OpenMode, string> = {
  append: 'a',
  read: 'r',
  'create-exclusive': 'wx',
  truncate: 'w',
  'read-write': 'r+',
};

function writeAsync(fd: number, buf: Buffer, position: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, 0, buf.length, position, (err, written) => (err ? reject(err) : resolve(written)));
  });
}

function fdOp(
  op: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void,
  fd: number,
): Promise<void> {
  return new Promise((resolve, reject) => op(fd, (err) => (err ? reject(err) : resolve())));
}

class RealFile implements AofFile {
  constructor(private readonly fd: number) {}
  write(buf: Buffer, position?: number): Promise<number> {
    return writeAsync(this.fd, buf, position ?? null);
  }
  writeSync(buf: Buffer): number {
    return fs.writeSync(this.fd, buf, 0, buf.length, null);
  }
  truncateSync(length: number): void {
    fs.ftruncateSync(this.fd, length);
  }
  datasync(): Promise<void> {
    return fdOp(fs.fdatasync, this.fd);
  }
  sync(): Promise<void> {
    return fdOp(fs.fsync, this.fd);
  }
  truncate(length: number): Promise<void> {
    return new Promise((resolve, reject) =>
      fs.ftruncate(this.fd, length, (err) => (err ? reject(err) : resolve())),
    );
  }
  size(): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.fstat(this.fd, (err, st) => (err ? reject(err) : resolve(st.size))),
    );
  }
  close(): Promise<void> {
    return fdOp(fs.close, this.fd);
  }
}

export const realFs: FsLayer = {
  open(path, mode) {
    return new Promise((resolve, reject) =>
      fs.open(path, FLAGS[mode], 0o644, (err, fd) => (err ? reject(err) : resolve(new RealFile(fd)))),
    );
  },
  readFile: (path) => fsp.readFile(path),
  async *readChunks(path, chunkBytes, start = 0) {
    const handle = await fsp.open(path, 'r');
    // One read ahead: the disk (or page cache copy) works while the caller parses the last chunk.
    const readAt = (position: number) => {
      const buf = Buffer.allocUnsafe(chunkBytes);
      return handle.read(buf, 0, chunkBytes, position).then(({ bytesRead }) => ({ buf, bytesRead }));
    };
    let ahead: ReturnType<typeof readAt> | null = null;
    try {
      let position = start;
      ahead = readAt(position);
      for (;;) {
        const { buf, bytesRead } = await ahead;
        ahead = null;
        if (bytesRead === 0) return;
        position += bytesRead;
        ahead = readAt(position);
        yield bytesRead === chunkBytes ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      // A caller that stops early leaves a read in flight: let it finish before the close.
      if (ahead !== null) await ahead.catch(() => undefined);
      await handle.close();
    }
  },
  async size(path) {
    try {
      return (await fsp.stat(path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  mkdirp: async (path) => {
    await fsp.mkdir(path, { recursive: true });
  },
  readdir: (path) => fsp.readdir(path),
  truncate: (path, length) => fsp.truncate(path, length),
  async fsyncDir(path) {
    const handle = await fsp.open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async freeBytes(path) {
    const st = await fsp.statfs(path);
    return st.bavail * st.bsize;
  },
};
