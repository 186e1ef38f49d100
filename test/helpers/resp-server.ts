/**
 * Test helpers for the RESP port: a node in a fresh temp directory with the
 * port in front of it on a free loopback port, a raw RESP client over a real
 * socket, a file-system layer whose fdatasync a test can hold, and a runner
 * for Debian's redis-cli / redis-benchmark that kills exactly its own PID.
 */
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type AofConfig, DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { type AofFile, type FsLayer, realFs } from '../../src/aof/fs.js';
import { type RespPort, type RespPortOptions, startRespPort } from '../../src/http/resp-port.js';
import { AofqNode } from '../../src/node/node.js';
import { RespDecoder } from '../../src/resp/decode.js';
import type { RespValue } from '../../src/resp/types.js';

export interface RespFixture {
  dir: string;
  node: AofqNode;
  port: RespPort;
  close(): Promise<void>;
}

export async function startRespFixture(
  options: { aof?: Partial<AofConfig>; port?: RespPortOptions; fs?: FsLayer } = {},
): Promise<RespFixture> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-resp-'));
  const aofConfig: AofConfig = { ...DEFAULT_AOF_CONFIG, dir, ...options.aof };
  const node = await AofqNode.open(aofConfig, { fs: options.fs });
  const port = await startRespPort(node, { host: '127.0.0.1', port: 0, aofConfig, ...options.port });
  return {
    dir,
    node,
    port,
    async close() {
      await port.close();
      await node.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** realFs, except that fdatasync/fsync of files opened for append wait while the gate is held. */
export class GatedFs implements FsLayer {
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  /** Syncs started while held, not yet let through. */
  waiting = 0;

  hold(): void {
    if (this.gate !== null) return;
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  private async pass(): Promise<void> {
    while (this.gate !== null) {
      this.waiting++;
      try {
        await this.gate;
      } finally {
        this.waiting--;
      }
    }
  }

  async open(file: string, mode: Parameters<FsLayer['open']>[1]): Promise<AofFile> {
    const inner = await realFs.open(file, mode);
    if (mode !== 'append') return inner;
    return {
      write: (buf, position) => inner.write(buf, position),
      writeSync: (buf) => inner.writeSync(buf),
      truncateSync: (length) => inner.truncateSync(length),
      datasync: async () => {
        await this.pass();
        return inner.datasync();
      },
      sync: async () => {
        await this.pass();
        return inner.sync();
      },
      truncate: (length) => inner.truncate(length),
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }
  readFile = realFs.readFile;
  readChunks = realFs.readChunks;
  size = realFs.size;
  rename = realFs.rename;
  unlink = realFs.unlink;
  mkdirp = realFs.mkdirp;
  readdir = realFs.readdir;
  truncate = realFs.truncate;
  fsyncDir = realFs.fsyncDir;
  freeBytes = realFs.freeBytes;
}

/** A RESP client on a raw socket: send any bytes, read replies one by one. */
export class RawClient {
  readonly socket: net.Socket;
  private readonly decoder = new RespDecoder({ maxBulkBytes: 64 * 1024 * 1024 });
  private readonly replies: RespValue[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>;
  /** Number of 'data' events seen: how many pieces the replies arrived in. */
  reads = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => {
      this.reads++;
      this.decoder.push(chunk);
      for (let event = this.decoder.next(); event !== undefined; event = this.decoder.next()) {
        if (event.kind === 'frame') this.replies.push(event.value);
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.off('error', reject);
        resolve(new RawClient(socket));
      });
      socket.once('error', reject);
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** A command as a RESP array of bulk strings. */
  command(...argv: (string | Buffer)[]): void {
    let out = `*${argv.length}\r\n`;
    const parts: Buffer[] = [];
    for (const arg of argv) {
      const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
      out += `$${bytes.length}\r\n`;
      parts.push(Buffer.from(out), bytes);
      out = '\r\n';
    }
    parts.push(Buffer.from(out));
    this.socket.write(Buffer.concat(parts));
  }

  /** The next reply, or a rejection after `timeoutMs` or when the connection closes first. */
  async reply(timeoutMs = 5000): Promise<RespValue> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.replies.length > 0) return this.replies.shift() as RespValue;
      if (this.ended) throw new Error('connection closed before a reply');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Replies received and not yet taken. */
  get queued(): number {
    return this.replies.length;
  }

  async call(...argv: (string | Buffer)[]): Promise<RespValue> {
    this.command(...argv);
    return this.reply();
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program; it is killed (by its PID) if it outlives `timeoutMs`. */
export function runTool(command: string, args: string[], timeoutMs = 30_000): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Poll `condition` every few ms until it holds; throw after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
