/**
 * Regressions from the HTTP fuzz (test/contract/http-fuzz.test.ts), each
 * against a real `aofq server` process: a request body that is not UTF-8
 * used to be accepted with U+FFFD in place of its bytes (a job's name
 * silently changed); a path with bad percent-encoding or an overlong
 * parameter got fastify's own 400 / 414 JSON without a `code`; and a request
 * that Node's HTTP parser refuses (a bad request line or header, headers
 * over 16 KiB) or an HTTP/1.1 request without a Host header got a bare
 * 400 / 431 without a `code`. Each is now a coded
 * application/problem+json reply, and the server keeps serving.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/index.js';
import { clientErrorOf } from '../../src/http/problem.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

let server: ServerProcess;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aofq-malformed-'));
  server = await startServer({ args: ['--dir', dir, '--loglevel', 'warning'] });
});

afterAll(async () => {
  await server?.stop('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface RawReply {
  status: number;
  headers: string;
  problem: { code?: string; status?: number; message?: string };
  closed: boolean;
}

/** Send raw bytes on a fresh connection; the reply and whether the server closed the connection after it. */
function raw(bytes: Buffer | string): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close in time; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`));
    }, 5000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined); // a reset after the reply
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]),
        headers: text.slice(0, split),
        problem: JSON.parse(text.slice(split + 4) || '{}'),
        closed: true,
      });
    });
    socket.write(bytes);
  });
}

interface Problemish {
  code?: string;
  status?: number;
  message?: string;
  name?: string;
}

async function post(
  path: string,
  body: Buffer | string,
): Promise<{ status: number; type: string; body: Problemish }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: (await response.json()) as Problemish,
  };
}

function expectProblem(status: number, type: string, body: { code?: string; status?: number }, code: string) {
  expect(status).toBe(ERRORS[code as keyof typeof ERRORS].status);
  expect(type).toMatch(/^application\/problem\+json/);
  expect(body).toMatchObject({ status, code });
}

describe('malformed requests get coded problems', () => {
  it('refuses a body that is not UTF-8, and keeps a UTF-8 one byte for byte', async () => {
    const head = Buffer.from('{"name":"caf');
    const tail = Buffer.from('"}');
    for (const bad of [[0xe9], [0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const reply = await post('/v1/queues/utf8/jobs', Buffer.concat([head, Buffer.from(bad), tail]));
      expectProblem(reply.status, reply.type, reply.body, 'AOFQ_ERR_HTTP_BAD_JSON');
      expect(reply.body.message).toMatch(/not valid UTF-8/);
    }
    // Nothing was enqueued by the refused bodies (the queue does not even exist).
    const missing = await fetch(`${server.url}/v1/queues/utf8`);
    expect(missing.status).toBe(404);
    const name = 'café ☕ 😀 \u0000 ǅ';
    const added = await post('/v1/queues/utf8/jobs', Buffer.from(JSON.stringify({ name }), 'utf8'));
    expect(added.status).toBe(201);
    expect(added.body.name).toBe(name);
    // A UTF-8 byte order mark is allowed (RFC 8259 lets a parser ignore it).
    const bom = await post('/v1/queues/utf8/jobs', Buffer.from('\ufeff{"name":"bom"}', 'utf8'));
    expect(bom.status).toBe(201);
  });

  it('answers a path with bad percent-encoding or an overlong parameter with 400 AOFQ_ERR_HTTP_VALIDATION', async () => {
    for (const path of [
      '/v1/queues/%E0%A4%A/jobs',
      '/v1/queues/q/jobs/%ff%fe',
      `/v1/queues/${'a'.repeat(801)}`,
    ]) {
      const response = await fetch(`${server.url}${path}`);
      const body = (await response.json()) as Problemish;
      expectProblem(
        response.status,
        response.headers.get('content-type') ?? '',
        body,
        'AOFQ_ERR_HTTP_VALIDATION',
      );
      expect(body.message).toMatch(/^path: /);
    }
  });

  it('answers what the HTTP parser refuses with a coded problem and closes the connection', async () => {
    const cases: Array<[string, string]> = [
      ['GE\u0001T / HTTP/1.1\r\nHost: x\r\n\r\n', 'AOFQ_ERR_HTTP_BAD_REQUEST'],
      ['GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n', 'AOFQ_ERR_HTTP_BAD_REQUEST'],
      [
        'POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n',
        'AOFQ_ERR_HTTP_BAD_REQUEST',
      ],
      [
        'POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
        'AOFQ_ERR_HTTP_BAD_REQUEST',
      ],
      [
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
        'AOFQ_ERR_HTTP_HEADERS_TOO_LARGE',
      ],
      // Node answered this one itself, with a bare 400 (no content type, no body).
      ['GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', 'AOFQ_ERR_HTTP_BAD_REQUEST'],
    ];
    for (const [request, code] of cases) {
      const reply = await raw(request);
      expect(reply.status, request.slice(0, 60)).toBe(ERRORS[code as keyof typeof ERRORS].status);
      expect(reply.headers).toMatch(/^content-type: application\/problem\+json/im);
      expect(reply.headers).toMatch(/^connection: close/im);
      expect(reply.problem).toMatchObject({ code, status: reply.status });
      expect(reply.closed).toBe(true);
    }
    // The server is unharmed.
    const health = await fetch(`${server.url}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('maps the HTTP parser errors to their codes', () => {
    const withCode = (code: string, reason?: string) => Object.assign(new Error(code), { code, reason });
    expect(clientErrorOf(withCode('HPE_HEADER_OVERFLOW'), 16384)).toMatchObject({
      code: 'AOFQ_ERR_HTTP_HEADERS_TOO_LARGE',
      status: 431,
      message: 'Request headers are larger than 16384 bytes',
    });
    expect(clientErrorOf(withCode('ERR_HTTP_REQUEST_TIMEOUT'), 16384)).toMatchObject({
      code: 'AOFQ_ERR_HTTP_REQUEST_TIMEOUT',
      status: 408,
    });
    expect(clientErrorOf(withCode('HPE_INVALID_METHOD', 'Invalid method encountered'), 16384)).toMatchObject({
      code: 'AOFQ_ERR_HTTP_BAD_REQUEST',
      status: 400,
      message: 'Malformed HTTP request: HPE_INVALID_METHOD (Invalid method encountered)',
    });
  });
});
