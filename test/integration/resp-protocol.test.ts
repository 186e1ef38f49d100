/**
 * The RESP port over raw sockets: pipelining order, inline commands, AUTH,
 * WAITAOF (with an fsync held open by the test), a slow fsync that holds back
 * only its own client's replies, the limits (bulk length, query buffer,
 * maxclients, protocol errors) and that the server serves others afterwards.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorReply, SimpleString } from '../../src/resp/types.js';
import { GatedFs, RawClient, type RespFixture, startRespFixture, waitFor } from '../helpers/resp-server.js';

const fixtures: RespFixture[] = [];
const clients: RawClient[] = [];
const gates: GatedFs[] = [];

function gatedFs(): GatedFs {
  const created = new GatedFs();
  gates.push(created);
  return created;
}

async function fixture(options: Parameters<typeof startRespFixture>[0] = {}): Promise<RespFixture> {
  const started = await startRespFixture(options);
  fixtures.push(started);
  return started;
}

async function connect(f: RespFixture): Promise<RawClient> {
  const client = await RawClient.connect(f.port.port);
  clients.push(client);
  return client;
}

afterEach(async () => {
  // A test that failed while holding an fsync must not hang the close.
  for (const gated of gates.splice(0)) gated.release();
  for (const client of clients.splice(0)) client.close();
  for (const f of fixtures.splice(0)) await f.close();
});

function errorText(value: unknown): string {
  expect(value).toBeInstanceOf(ErrorReply);
  return (value as ErrorReply).message;
}

function status(value: unknown): string {
  expect(value).toBeInstanceOf(SimpleString);
  return (value as SimpleString).value;
}

describe('RESP port: pipelining and inline commands', () => {
  it('answers 500 pipelined commands from one write in order', async () => {
    const f = await fixture();
    const client = await connect(f);
    let batch = '';
    for (let i = 0; i < 500; i++)
      batch += i % 2 === 0 ? '*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n' : '*1\r\n$4\r\nPING\r\n';
    client.send(batch);
    let n = 0;
    for (let i = 0; i < 500; i++) {
      const reply = await client.reply();
      if (i % 2 === 0) expect(reply).toBe(++n);
      else expect(status(reply)).toBe('PONG');
    }
    expect(n).toBe(250);
    // Replies were coalesced: far fewer reads than replies.
    expect(client.reads).toBeLessThan(100);
  });

  it('holds back a client that does not read its replies, then delivers them all intact', async () => {
    const f = await fixture();
    const slow = await connect(f);
    const other = await connect(f);
    const value = Buffer.alloc(1024 * 1024, 0x61);
    value.write('head', 0);
    value.write('tail', value.length - 4);
    expect(status(await other.call('SET', 'big', value))).toBe('OK');
    // 64 GETs of 1 MiB each in one write, while the client does not read: 64 MiB of replies.
    slow.socket.pause();
    let batch = '';
    for (let i = 0; i < 64; i++) batch += '*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n';
    slow.send(batch);
    const omem = async (): Promise<number> => {
      const list = String(await other.call('CLIENT', 'LIST'));
      const line = list.split('\n').find((entry) => entry.includes(`id=`) && !entry.includes('cmd=client'));
      return Number(/ omem=(\d+) /.exec(line ?? '')?.[1]);
    };
    await waitFor(() => slow.socket.readableLength > 0 || slow.queued > 0, 5000, 'the first replies');
    // The server stops encoding replies when the socket is full: its buffer stays small.
    const held = await omem();
    expect(held).toBeLessThan(4 * 1024 * 1024);
    slow.socket.resume();
    for (let i = 0; i < 64; i++) {
      const reply = (await slow.reply(10_000)) as Buffer;
      expect(reply.length).toBe(value.length);
      expect(reply.equals(value)).toBe(true);
    }
  }, 20_000);

  it('accepts inline commands with quoting, and RESP commands split at every byte', async () => {
    const f = await fixture();
    const client = await connect(f);
    client.send('PING\r\nSET greeting "hello world"\r\nGET greeting\r\n');
    expect(status(await client.reply())).toBe('PONG');
    expect(status(await client.reply())).toBe('OK');
    expect((await client.reply()) as Buffer).toEqual(Buffer.from('hello world'));
    const bytes = Buffer.from(
      '*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$3\r\nyes\r\n*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n',
    );
    for (const byte of bytes) client.send(Buffer.from([byte]));
    expect(status(await client.reply())).toBe('OK');
    expect(await client.reply()).toEqual(Buffer.from('yes'));
  });

  it('QUIT answers OK and closes the connection', async () => {
    const f = await fixture();
    const client = await connect(f);
    client.send('*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n');
    expect(status(await client.reply())).toBe('OK');
    await client.closed;
    expect(client.queued).toBe(0);
    await waitFor(() => f.port.clientCount() === 0, 2000, 'the server to drop the client');
  });
});

describe('RESP port: AUTH', () => {
  it('refuses commands before AUTH, refuses a wrong token, accepts a right one', async () => {
    const f = await fixture({
      port: {
        tokens: [
          { name: 'app', secret: 'alpha-secret', role: 'admin' },
          { name: 'reader', secret: 'beta-secret', role: 'consumer' },
        ],
      },
    });
    const client = await connect(f);
    expect(errorText(await client.call('GET', 'k'))).toBe('NOAUTH Authentication required.');
    expect(errorText(await client.call('PING'))).toBe('NOAUTH Authentication required.');
    expect(errorText(await client.call('HELLO', '2'))).toMatch(
      /^NOAUTH HELLO must be called with the client/,
    );
    expect(errorText(await client.call('AUTH', 'wrong'))).toBe(
      'WRONGPASS invalid username-password pair or user is disabled.',
    );
    expect(errorText(await client.call('AUTH', 'reader', 'alpha-secret'))).toMatch(/^WRONGPASS/);
    expect(errorText(await client.call('GET', 'k'))).toBe('NOAUTH Authentication required.');
    expect(status(await client.call('AUTH', 'alpha-secret'))).toBe('OK');
    expect(status(await client.call('SET', 'k', 'v'))).toBe('OK');
    expect(await client.call('GET', 'k')).toEqual(Buffer.from('v'));

    // HELLO with AUTH authenticates too; a consumer token may not reconfigure the server.
    const reader = await connect(f);
    const hello = (await reader.call(
      'HELLO',
      '2',
      'AUTH',
      'reader',
      'beta-secret',
      'SETNAME',
      'r1',
    )) as unknown[];
    expect(hello[0]).toEqual(Buffer.from('server'));
    expect(await reader.call('CLIENT', 'GETNAME')).toEqual(Buffer.from('r1'));
    expect(await reader.call('GET', 'k')).toEqual(Buffer.from('v'));
    expect(errorText(await reader.call('CONFIG', 'SET', 'appendfsync', 'no'))).toBe(
      "NOPERM This token's role may not config set",
    );
    expect(errorText(await reader.call('FLUSHALL'))).toMatch(/^NOPERM/);
    expect(f.node.aof.appendFsync).toBe('everysec');
  });

  it('without tokens, AUTH says no password is configured', async () => {
    const f = await fixture();
    const client = await connect(f);
    expect(errorText(await client.call('AUTH', 'x'))).toMatch(
      /^ERR AUTH <password> called without any password configured for the default user/,
    );
    expect(status(await client.call('PING'))).toBe('PONG');
  });
});

describe('RESP port: CONFIG', () => {
  it("reads the AOF configuration and the server layer's directives, hides secrets, sets through hooks", async () => {
    const applied: [string, string][] = [];
    const f = await fixture({
      port: {
        getConfig: () => ({ 'body-limit': '1mb', loglevel: 'info', requirepass: 'hidden', port: '7700' }),
        setConfig: (directive, value) => {
          if (directive !== 'loglevel') return false;
          applied.push([directive, value]);
          return true;
        },
      },
    });
    const client = await connect(f);
    const dir = (await client.call('CONFIG', 'GET', 'dir')) as Buffer[];
    expect(dir.map(String)).toEqual(['dir', f.dir]);
    const many = (
      (await client.call('CONFIG', 'GET', 'body-limit', 'loglevel', 'requirepass', 'port')) as Buffer[]
    ).map(String);
    // The port reports its own bound port, not the server layer's HTTP one.
    expect(many).toEqual(['body-limit', '1mb', 'loglevel', 'info', 'port', String(f.port.port)]);
    const all = ((await client.call('CONFIG', 'GET', '*')) as Buffer[]).map(String);
    expect(all).not.toContain('requirepass');
    expect(all).toContain('appendfilename');
    expect(all).toContain('save');
    expect(status(await client.call('CONFIG', 'SET', 'loglevel', 'debug'))).toBe('OK');
    expect(applied).toEqual([['loglevel', 'debug']]);
    expect(errorText(await client.call('CONFIG', 'SET', 'body-limit', '2mb'))).toBe(
      "ERR CONFIG SET failed: 'body-limit' cannot be changed at run time",
    );
    expect(errorText(await client.call('CONFIG', 'SET', 'dir', '/tmp'))).toBe(
      "ERR CONFIG SET failed: 'dir' cannot be changed at run time",
    );
    // Several directives at once, all or nothing.
    expect(
      errorText(await client.call('CONFIG', 'SET', 'appendfsync', 'always', 'maxclients', 'zero')),
    ).toMatch(/^ERR CONFIG SET failed \(possibly related to argument 'maxclients'\)/);
    expect(f.node.aof.appendFsync).toBe('everysec');
    expect(
      status(await client.call('CONFIG', 'SET', 'maxclients', '50', 'client-query-buffer-limit', '2mb')),
    ).toBe('OK');
    const limits = (
      (await client.call('CONFIG', 'GET', 'maxclients', 'client-query-buffer-limit')) as Buffer[]
    ).map(String);
    expect(limits).toEqual(['maxclients', '50', 'client-query-buffer-limit', String(2 * 1024 * 1024)]);
  });
});

describe('RESP port: WAITAOF and slow fsyncs', () => {
  it('WAITAOF returns [1, 0] under everysec once the write is fsynced', async () => {
    const f = await fixture();
    const client = await connect(f);
    expect(f.node.aof.appendFsync).toBe('everysec');
    // Nothing written by this client yet: acknowledged at once.
    expect(await client.call('WAITAOF', '1', '0', '0')).toEqual([1, 0]);
    expect(status(await client.call('SET', 'durable', 'yes'))).toBe('OK');
    const lsn = f.node.aof.lastLsn;
    const started = Date.now();
    expect(await client.call('WAITAOF', '1', '0', '0')).toEqual([1, 0]);
    expect(f.node.aof.fsyncedLsn).toBeGreaterThanOrEqual(lsn);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a held fsync blocks only its own client: WAITAOF times out with [0, 0], others are served', async () => {
    const gated = gatedFs();
    const f = await fixture({ fs: gated });
    const writer = await connect(f);
    const other = await connect(f);
    gated.hold();
    expect(status(await writer.call('SET', 'slow', '1'))).toBe('OK');
    // The write is not fsynced while the gate is held: a short WAITAOF times out unacknowledged.
    expect(await writer.call('WAITAOF', '1', '0', '50')).toEqual([0, 0]);

    // A blocking WAITAOF followed by a pipelined GET: the GET runs at once, its reply waits its turn.
    writer.send('*4\r\n$7\r\nWAITAOF\r\n$1\r\n1\r\n$1\r\n0\r\n$1\r\n0\r\n*2\r\n$3\r\nGET\r\n$4\r\nslow\r\n');
    // Another client is served meanwhile.
    expect(status(await other.call('SET', 'fast', '2'))).toBe('OK');
    expect(await other.call('GET', 'slow')).toEqual(Buffer.from('1'));
    const info = (await other.call('INFO', 'clients')) as Buffer;
    expect(info.toString()).toMatch(/blocked_clients:1\r\n/);
    expect(writer.queued).toBe(0);

    await waitFor(() => gated.waiting > 0, 5000, 'the everysec fsync to reach the gate');
    gated.release();
    expect(await writer.reply()).toEqual([1, 0]);
    expect(await writer.reply()).toEqual(Buffer.from('1'));
    expect(f.node.aof.fsyncedLsn).toBeGreaterThanOrEqual(f.node.aof.lastLsn - 1);
  });

  it('under appendfsync always a write is answered after its fsync; other clients go on meanwhile', async () => {
    const gated = gatedFs();
    const f = await fixture({ fs: gated, aof: { appendfsync: 'always' } });
    const writer = await connect(f);
    const other = await connect(f);
    gated.hold();
    writer.send('*3\r\n$3\r\nSET\r\n$1\r\nw\r\n$1\r\n1\r\n*1\r\n$4\r\nPING\r\n');
    await waitFor(() => gated.waiting > 0, 5000, 'the fsync of the SET to reach the gate');
    // Reads are not held up by another client's fsync (a read's reply does not wait for durability).
    expect(await other.call('GET', 'w')).toEqual(Buffer.from('1'));
    expect(status(await other.call('PING'))).toBe('PONG');
    expect(writer.queued).toBe(0);
    const lsn = f.node.aof.lastLsn;
    expect(f.node.aof.fsyncedLsn).toBeLessThan(lsn);
    gated.release();
    expect(status(await writer.reply())).toBe('OK');
    expect(f.node.aof.fsyncedLsn).toBeGreaterThanOrEqual(lsn);
    expect(status(await writer.reply())).toBe('PONG');
  });

  it('WAITAOF with replicas asked waits for the timeout and reports 0 replicas', async () => {
    const f = await fixture();
    const client = await connect(f);
    const started = Date.now();
    expect(await client.call('WAITAOF', '0', '1', '30')).toEqual([1, 0]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });
});

describe('RESP port: limits', () => {
  it('refuses a bulk length over the limit with a protocol error, and serves other clients', async () => {
    const f = await fixture();
    const bad = await connect(f);
    bad.send('*2\r\n$3\r\nGET\r\n$600000000\r\n');
    expect(errorText(await bad.reply())).toMatch(/^ERR Protocol error: /);
    await bad.closed;

    const huge = await connect(f);
    huge.send('*2000000\r\n');
    expect(errorText(await huge.reply())).toMatch(/^ERR Protocol error: /);
    await huge.closed;

    const malformed = await connect(f);
    malformed.send('*1\r\n+PING\r\n');
    expect(errorText(await malformed.reply())).toBe("ERR Protocol error: expected '$', got '+'");
    await malformed.closed;

    const good = await connect(f);
    expect(status(await good.call('PING'))).toBe('PONG');
  });

  it('closes a client whose query buffer exceeds client-query-buffer-limit', async () => {
    const limit = 1024 * 1024;
    const f = await fixture({ port: { queryBufferLimit: limit } });
    const bad = await connect(f);
    // An incomplete command: a bulk of exactly the limit, without its final CRLF.
    bad.send(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${limit}\r\n`);
    bad.send(Buffer.alloc(limit, 0x78));
    expect(errorText(await bad.reply())).toMatch(/^ERR Protocol error: query buffer of \d+ bytes is over/);
    await bad.closed;

    // A bulk over the limit is refused at its header, before its bytes arrive.
    const over = await connect(f);
    over.send(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${limit + 1}\r\n`);
    expect(errorText(await over.reply())).toMatch(/^ERR Protocol error: /);
    await over.closed;

    const good = await connect(f);
    expect(await good.call('GET', 'big')).toBeNull();
    expect(status(await good.call('SET', 'small', 'x'.repeat(1000)))).toBe('OK');
    expect(f.port.clientCount()).toBe(1);
  });

  it('refuses clients over maxclients with Redis error, and accepts again after one leaves', async () => {
    const f = await fixture({ port: { maxClients: 2 } });
    const first = await connect(f);
    const second = await connect(f);
    expect(status(await first.call('PING'))).toBe('PONG');
    expect(status(await second.call('PING'))).toBe('PONG');
    const third = await connect(f);
    expect(errorText(await third.reply())).toBe('ERR max number of clients reached');
    await third.closed;
    const info = (await first.call('INFO', 'stats')) as Buffer;
    expect(info.toString()).toMatch(/rejected_connections:1\r\n/);
    first.close();
    await waitFor(() => f.port.clientCount() === 1, 2000, 'the server to see the client leave');
    const fourth = await connect(f);
    expect(status(await fourth.call('PING'))).toBe('PONG');
  });
});
