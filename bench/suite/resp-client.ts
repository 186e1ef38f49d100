/**
 * A minimal pipelining RESP2 client for the suite's own admin calls (PING,
 * INFO, BGREWRITEAOF, DBSIZE) against redis-server and aofq's RESP port, and
 * for bulk-loading plain keys. Not a load generator for measured figures
 * (redis-benchmark and BullMQ's ioredis are those).
 */
import net from 'node:net';

export type Reply = string | number | null | Error | Reply[];

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

/** Parse one reply at `at`; returns [reply, next offset] or null when more bytes are needed. */
function parse(buf: Buffer, at: number): [Reply, number] | null {
  if (at >= buf.length) return null;
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at] as number);
  const line = buf.toString('latin1', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: Reply[] = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, pos);
        if (r === null) return null;
        items.push(r[0]);
        pos = r[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`bad RESP reply type ${JSON.stringify(type)}`);
  }
}

export function encode(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export class RespConn {
  private buf: Buffer = Buffer.alloc(0);
  private readonly pending: Pending[] = [];
  private closedError: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      let at = 0;
      for (;;) {
        const r = parse(this.buf, at);
        if (r === null) break;
        at = r[1];
        this.pending.shift()?.resolve(r[0]);
      }
      this.buf = at === this.buf.length ? Buffer.alloc(0) : this.buf.subarray(at);
    });
    const fail = (err: Error): void => {
      this.closedError = err;
      for (const p of this.pending.splice(0)) p.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<RespConn> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect ${host}:${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RespConn(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  /** Send one command; resolves with its reply (an Error reply resolves, it does not reject). */
  call(...args: (string | Buffer)[]): Promise<Reply> {
    return this.send(encode(args), 1).then((r) => r[0] as Reply);
  }

  /** Write pre-encoded bytes holding `count` commands; resolves with their replies in order. */
  send(bytes: Buffer, count: number): Promise<Reply[]> {
    if (this.closedError) return Promise.reject(this.closedError);
    const replies: Promise<Reply>[] = [];
    for (let i = 0; i < count; i++) {
      replies.push(new Promise<Reply>((resolve, reject) => this.pending.push({ resolve, reject })));
    }
    this.socket.write(bytes);
    return Promise.all(replies);
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

/** One command on a fresh connection. */
export async function respOnce(port: number, ...args: string[]): Promise<Reply> {
  const c = await RespConn.connect(port);
  try {
    return await c.call(...args);
  } finally {
    c.close();
  }
}

/** INFO [section] parsed into fields. */
export async function info(port: number, section?: string): Promise<Record<string, string>> {
  const r = await respOnce(port, 'INFO', ...(section ? [section] : []));
  if (typeof r !== 'string') throw new Error(`INFO failed: ${String(r)}`);
  const out: Record<string, string> = {};
  for (const line of r.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** True once the server answers PING with PONG (a LOADING error or a refused connection is false). */
export async function pingOk(port: number): Promise<boolean> {
  try {
    return (await respOnce(port, 'PING')) === 'PONG';
  } catch {
    return false;
  }
}
