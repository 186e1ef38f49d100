/**
 * The RESP port started before its node (as `aofq server` does, so that a bind
 * failure shows before a long AOF load): clients that connect meanwhile are
 * held unread and served, in order, once the node is there; they are cut if
 * the node fails to open; maxclients counts them.
 */
import * as fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_AOF_CONFIG } from '../../src/aof/config.js';
import { type RespPort, startRespPort } from '../../src/http/resp-port.js';
import { AofqNode } from '../../src/node/node.js';
import { ErrorReply, SimpleString } from '../../src/resp/types.js';
import { RawClient, waitFor } from '../helpers/resp-server.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (err: unknown) => void } {
  let resolve: (value: T) => void = () => {};
  let reject: (err: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

async function lateNode(maxClients?: number): Promise<{
  port: RespPort;
  node: ReturnType<typeof deferred<AofqNode>>;
  open: () => Promise<AofqNode>;
}> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'aofq-resp-late-'));
  const node = deferred<AofqNode>();
  const port = await startRespPort(node.promise, {
    host: '127.0.0.1',
    port: 0,
    ...(maxClients === undefined ? {} : { maxClients }),
  });
  let opened: AofqNode | null = null;
  cleanups.push(async () => {
    await port.close();
    await opened?.close();
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return {
    port,
    node,
    open: async () => {
      opened = await AofqNode.open({ ...DEFAULT_AOF_CONFIG, dir });
      node.resolve(opened);
      return opened;
    },
  };
}

describe('a RESP port whose node is still loading', () => {
  it('holds early clients unread and answers their pipelined commands in order once the node is there', async () => {
    const { port, open } = await lateNode();
    const client = await RawClient.connect(port.port);
    cleanups.push(async () => client.close());
    client.command('SET', 'k', 'v1');
    client.command('GET', 'k');
    client.command('PING');
    await waitFor(() => port.clientCount() === 1, 5000, 'the held client to be counted');
    // Nothing can be answered yet: the commands wait unread.
    expect(client.queued).toBe(0);
    const node = await open();
    expect(await client.reply()).toEqual(new SimpleString('OK'));
    expect(await client.reply()).toEqual(Buffer.from('v1'));
    expect(await client.reply()).toEqual(new SimpleString('PONG'));
    expect(node.store.size).toBe(1);
    // Clients that connect later are served at once.
    const later = await RawClient.connect(port.port);
    cleanups.push(async () => later.close());
    expect(await later.call('GET', 'k')).toEqual(Buffer.from('v1'));
  });

  it('cuts the held clients when the node fails to open', async () => {
    const { port, node } = await lateNode();
    const client = await RawClient.connect(port.port);
    cleanups.push(async () => client.close());
    client.command('PING');
    await waitFor(() => port.clientCount() === 1, 5000, 'the held client to be counted');
    node.reject(new Error('the AOF is corrupt'));
    await client.closed;
    expect(client.queued).toBe(0);
    await waitFor(() => port.clientCount() === 0, 5000, 'the client to be gone');
  });

  it('counts held clients against maxclients', async () => {
    const { port, open } = await lateNode(1);
    const first = await RawClient.connect(port.port);
    cleanups.push(async () => first.close());
    await waitFor(() => port.clientCount() === 1, 5000, 'the held client to be counted');
    const second = await RawClient.connect(port.port);
    cleanups.push(async () => second.close());
    const refused = await second.reply();
    expect(refused).toBeInstanceOf(ErrorReply);
    expect((refused as ErrorReply).message).toMatch(/max number of clients/i);
    await open();
    expect(await first.call('PING')).toEqual(new SimpleString('PONG'));
  });
});
