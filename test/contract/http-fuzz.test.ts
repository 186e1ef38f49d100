/**
 * A fast-check fuzz of every operation of openapi.yaml against one real
 * `aofq server` process: request bodies shaped like their api/ schema but
 * wrong somewhere, arbitrary JSON, deep nesting, huge and odd numbers,
 * unicode and lone surrogates, `__proto__` / `constructor` keys, unknown
 * properties, bodies just under and over the body limit, invalid UTF-8,
 * random bytes, empty bodies, BOMs, chunked bodies and wrong content types;
 * path parameters with bad percent-encoding, dot segments and overlong
 * values; query strings with wrong, repeated and unknown parameters; wrong
 * methods, bad tokens and odd Accept headers. Then malformed HTTP on raw
 * sockets.
 *
 * Every reply must be < 500 (but a 5xx the operation documents, e.g. 501),
 * every 4xx must be application/problem+json with a registry `code` whose
 * status it carries, every status must be documented for the operation, and
 * every 2xx JSON body must validate against its documented schema. After
 * the fuzz the process must still run, /healthz and /readyz answer, a real
 * enqueue → lease → ack works, a job written before the fuzz is intact, and
 * after a restart the AOF the fuzz wrote loads and still holds the same
 * queues. Bounded: at most RUNS requests and TIME_LIMIT_MS; at least
 * MIN_RUNS must have run. The seed is printed on failure (fast-check's
 * report); set AOFQ_FUZZ_SEED to replay one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Ajv, type ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/index.js';
import { loadContract, type Operation } from '../../src/http/contract.js';
import {
  anyJson,
  POLLUTING_KEYS,
  RawNumber,
  type Schema,
  schemaFuzz,
  toJsonText,
} from '../helpers/schema-fuzz.js';
import { type ServerProcess, startServer } from '../helpers/server-process.js';

const BODY_LIMIT = 64 * 1024;
const RUNS = 3000;
const MIN_RUNS = 800;
const TIME_LIMIT_MS = 15_000;
const RAW_RUNS = 150;
const REQUEST_TIMEOUT_MS = 10_000;
const ADMIN = 'fuzz-admin-secret-01234567';
const PRODUCER = 'fuzz-producer-secret-0123';
const QUEUE = 'fuzz';
const SENTINEL_QUEUE = 'fuzz-sentinel.keep';

const contract = loadContract();
const schemas = new Map<string, Schema>(contract.schemas.map((s) => [s.$id, s as Schema]));
const ajv = new Ajv({ strict: true, allowUnionTypes: true });
for (const schema of contract.schemas) ajv.addSchema(schema);
const responseValidators = new Map<string, ValidateFunction>();
function responseValidator(id: string): ValidateFunction {
  let validate = responseValidators.get(id);
  if (!validate) {
    validate = ajv.getSchema(id) as ValidateFunction;
    responseValidators.set(id, validate);
  }
  return validate;
}

const fuzz = schemaFuzz({
  schemas,
  // A long poll holds its request for up to 30 s: keep valid waits short.
  overrides: { waitMs: fc.integer({ min: 0, max: 20 }) },
});

type BodyKind =
  | 'valid'
  | 'shaped'
  | 'json'
  | 'deep'
  | 'near-limit'
  | 'bad-utf8'
  | 'bytes'
  | 'empty'
  | 'bom'
  | 'none';

interface FuzzRequest {
  op: Operation;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
  chunked: boolean;
  kind: BodyKind;
}

/** Percent-encode a string's UTF-8 bytes (a lone surrogate becomes U+FFFD's bytes, not an exception). */
function pct(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Raw path segments: already percent-encoded (some badly), sent as they are. */
const RAW_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2F',
  '%',
  '%zz',
  '%E0%A4%A',
  '%00',
  '%ff',
  '%C0%AF',
  '%ED%A0%80',
  '%F0%9F%98%80',
  '+',
  '%20',
  'a'.repeat(129),
  'a'.repeat(257),
  'a'.repeat(801),
  '%41'.repeat(300),
];

function pathValue(name: string, knownIds: readonly string[]): fc.Arbitrary<string> {
  const known = name === 'queue' ? [QUEUE, 'fuzz-2', 'fuzz-dlq'] : knownIds;
  const schema = (name === 'queue' ? schemas.get('QueueName.json') : schemas.get('JobId.json')) as Schema;
  return fc.oneof(
    { arbitrary: fc.constantFrom(...known), weight: 6 },
    { arbitrary: fuzz.valid(schema).map((v) => pct(String(v))), weight: 2 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map(pct), weight: 1 },
    { arbitrary: fc.constantFrom(...RAW_SEGMENTS), weight: 1 },
  );
}

/** Query values sent as they are: bad or odd percent-encoding. */
const RAW_QUERY_VALUES = ['%zz', '%', '%00', '%ED%A0%80', 'true', '1e999', '+', '%2B'];

function queryString(op: Operation): fc.Arbitrary<string> {
  const params = op.query.map((p) =>
    fc.oneof(
      { arbitrary: fuzz.valid(p.schema as Schema), weight: 3 },
      { arbitrary: fuzz.wrong(p.schema as Schema), weight: 1 },
    ),
  );
  const names = op.query.map((p) => p.name);
  const encode = (value: unknown): string =>
    pct(value instanceof RawNumber ? value.text : typeof value === 'string' ? value : toJsonText(value));
  return fc
    .tuple(
      fc.tuple(...params.map((p) => fc.option(p, { freq: 4 }))),
      fc.array(
        fc.tuple(
          fc.oneof(
            fc.constantFrom(...names, ...POLLUTING_KEYS, 'state[]', 'a[b]'),
            fc.string({ maxLength: 6 }),
          ),
          fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom(...RAW_QUERY_VALUES)),
        ),
        { maxLength: 2 },
      ),
    )
    .map(([values, extras]) => {
      const parts: string[] = [];
      values.forEach((value, i) => {
        if (value !== null) parts.push(`${pct(names[i] as string)}=${encode(value)}`);
      });
      for (const [key, value] of extras) {
        const raw = RAW_QUERY_VALUES.includes(value) ? value : pct(value);
        parts.push(`${pct(key)}=${raw}`);
      }
      return parts.length > 0 ? `?${parts.join('&')}` : '';
    });
}

/** `[[[…]]]` or `{"a":{"a":…}}`, alone or as a job's data. */
const deepBody = fc
  .tuple(fc.integer({ min: 100, max: 30_000 }), fc.boolean(), fc.boolean())
  .map(([depth, arrays, wrapped]) => {
    const inner = arrays
      ? `${'['.repeat(depth)}${']'.repeat(depth)}`
      : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
    return wrapped ? `{"name":"deep","data":${inner},"returnvalue":${inner},"progress":${inner}}` : inner;
  });

/** A valid-looking body padded to the body limit plus or minus a little. */
const nearLimitBody = fc.integer({ min: -64, max: 64 }).map((delta) => {
  const head = '{"name":"big","data":"';
  const tail = '"}';
  return `${head}${'x'.repeat(BODY_LIMIT + delta - head.length - tail.length)}${tail}`;
});

/** Invalid UTF-8 sequences: a stray continuation byte, overlong, a surrogate, 5-byte, truncated. */
const BAD_UTF8 = [
  [0xff],
  [0x80],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
];

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'application/JSON',
  'application/json ; charset=UTF-8',
  'application/problem+json',
  'application/jsonx',
  'application/json, text/plain',
  'application/octet-stream',
  '*/*',
  'x'.repeat(300),
  ';',
];

const AUTHORIZATIONS = [
  '',
  'Bearer',
  'Bearer ',
  `Bearer ${'x'.repeat(5000)}`,
  'Basic YTpi',
  `bearer ${ADMIN}x`,
  'Bearer a b',
];

function bodyFor(op: Operation): fc.Arbitrary<{ kind: BodyKind; text: string | Buffer | null }> {
  const schema = op.body === null ? null : (schemas.get(op.body) as Schema);
  const shaped = schema === null ? anyJson(3) : fuzz.shaped(schema);
  const asText = shaped.map(toJsonText);
  return fc.oneof(
    {
      arbitrary: (schema === null ? anyJson(3) : fuzz.valid(schema)).map((v) => ({
        kind: 'valid' as const,
        text: toJsonText(v),
      })),
      weight: op.body === null ? 1 : 5,
    },
    {
      arbitrary: asText.map((text) => ({ kind: 'shaped' as const, text })),
      weight: op.body === null ? 1 : 10,
    },
    { arbitrary: anyJson(4).map((v) => ({ kind: 'json' as const, text: toJsonText(v) })), weight: 2 },
    { arbitrary: deepBody.map((text) => ({ kind: 'deep' as const, text })), weight: 1 },
    { arbitrary: nearLimitBody.map((text) => ({ kind: 'near-limit' as const, text })), weight: 1 },
    {
      arbitrary: fc.tuple(asText, fc.nat(), fc.constantFrom(...BAD_UTF8)).map(([text, at, bytes]) => {
        const buffer = Buffer.from(text, 'utf8');
        const i = buffer.length === 0 ? 0 : at % buffer.length;
        return {
          kind: 'bad-utf8' as const,
          text: Buffer.concat([buffer.subarray(0, i), Buffer.from(bytes), buffer.subarray(i)]),
        };
      }),
      weight: 1,
    },
    {
      arbitrary: fc
        .uint8Array({ maxLength: 300 })
        .map((b) => ({ kind: 'bytes' as const, text: Buffer.from(b) })),
      weight: 1,
    },
    { arbitrary: fc.constant({ kind: 'empty' as const, text: '' }), weight: 1 },
    { arbitrary: asText.map((text) => ({ kind: 'bom' as const, text: `\ufeff${text}` })), weight: 1 },
    { arbitrary: fc.constant({ kind: 'none' as const, text: null }), weight: op.body === null ? 4 : 1 },
  );
}

function requestFor(op: Operation, knownIds: readonly string[]): fc.Arbitrary<FuzzRequest> {
  const names = Object.keys(op.pathParameters);
  const segments = fc.tuple(...names.map((name) => pathValue(name, knownIds)));
  return fc
    .record({
      segments,
      query:
        op.query.length > 0 ? queryString(op) : fc.constantFrom('', '', '', '?x=1', '?%zz', '?__proto__=1'),
      body: bodyFor(op),
      contentType: fc.oneof(
        { arbitrary: fc.constant('application/json'), weight: 10 },
        { arbitrary: fc.constant('application/json; charset=utf-8'), weight: 1 },
        { arbitrary: fc.constantFrom(...CONTENT_TYPES), weight: 2 },
        { arbitrary: fc.constant(null), weight: 1 },
      ),
      chunked: fc.boolean().chain((b) => (b ? fc.boolean() : fc.constant(false))),
      method: fc.oneof(
        { arbitrary: fc.constant(op.method as string), weight: 24 },
        { arbitrary: fc.constantFrom('PATCH', 'OPTIONS', 'PUT', 'DELETE', 'POST', 'GET'), weight: 1 },
      ),
      authorization: fc.oneof(
        { arbitrary: fc.constant(`Bearer ${ADMIN}`), weight: 16 },
        { arbitrary: fc.constant(`Bearer ${PRODUCER}`), weight: 2 },
        { arbitrary: fc.constantFrom(...AUTHORIZATIONS), weight: 1 },
        { arbitrary: fc.constant(null), weight: 1 },
      ),
      accept: fc.oneof(
        { arbitrary: fc.constant(null), weight: 12 },
        {
          arbitrary: fc.constantFrom(
            'text/plain',
            '*/*',
            'application/xml',
            'text/plain, application/json',
            ';;',
          ),
          weight: 1,
        },
      ),
      encoding: fc.oneof(
        { arbitrary: fc.constant(null), weight: 20 },
        { arbitrary: fc.constantFrom('gzip', 'br', 'x'), weight: 1 },
      ),
    })
    .map(
      ({ segments: values, query, body, contentType, chunked, method, authorization, accept, encoding }) => {
        let path = op.path;
        names.forEach((name, i) => {
          path = path.replace(`{${name}}`, values[i] as string);
        });
        const headers: Record<string, string> = {};
        if (body.text !== null && contentType !== null) headers['content-type'] = contentType;
        if (authorization !== null) headers.authorization = authorization;
        if (accept !== null) headers.accept = accept;
        if (encoding !== null && body.text !== null) headers['content-encoding'] = encoding;
        const buffer =
          body.text === null ? null : Buffer.isBuffer(body.text) ? body.text : Buffer.from(body.text, 'utf8');
        const request: FuzzRequest = {
          // Another method on the same path may be another operation (GET and PUT /v1/admin/config).
          op: contract.operations.find((o) => o.path === op.path && o.method === method) ?? op,
          method,
          path: `${path}${query}`,
          headers,
          body: buffer,
          chunked,
          kind: body.kind,
        };
        // fast-check prints counterexamples with this: short, and enough to replay by hand.
        Object.defineProperty(request, fc.toStringMethod, { value: () => describeRequest(request) });
        return request;
      },
    );
}

function describeRequest(request: FuzzRequest): string {
  const body =
    request.body === null
      ? 'no body'
      : `${request.body.length} bytes ${JSON.stringify(request.body.toString('utf8').slice(0, 200))}`;
  const how = `${request.op.operationId}, ${request.kind}${request.chunked ? ', chunked' : ''}`;
  return `${request.method} ${request.path.slice(0, 300)} (${how}) headers ${JSON.stringify(request.headers).slice(0, 300)} ${body}`;
}

interface Reply {
  status: number;
  contentType: string;
  body: Buffer;
}

async function send(client: Client, port: number, request: FuzzRequest): Promise<Reply> {
  const { body } = request;
  // Over the limit the server answers 413 and closes while the client still writes, which undici
  // reports as EPIPE: send those on a socket of their own that reads the reply whatever the write does.
  if (body !== null && body.length > BODY_LIMIT) return sendRaw(port, request);
  let payload: Buffer | Readable | null = body;
  if (body !== null && request.chunked) {
    // Transfer-Encoding: chunked, in a few pieces.
    const step = Math.max(1, Math.ceil(body.length / 3));
    const pieces: Buffer[] = [];
    for (let i = 0; i < body.length; i += step) pieces.push(body.subarray(i, i + step));
    payload = Readable.from(pieces);
  }
  const response = await client.request({
    method: request.method as 'GET',
    path: request.path,
    headers: request.headers,
    body: payload,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
  });
  const bytes = Buffer.from(await response.body.arrayBuffer());
  const type = response.headers['content-type'];
  return {
    status: response.statusCode,
    contentType: Array.isArray(type) ? type.join(',') : (type ?? ''),
    body: bytes,
  };
}

/** One request on its own connection; the reply is read even when writing the body fails. */
function sendRaw(port: number, request: FuzzRequest): Promise<Reply> {
  const body = request.body ?? Buffer.alloc(0);
  const lines = [
    `${request.method} ${request.path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Connection: close',
  ];
  for (const [name, value] of Object.entries(request.headers)) lines.push(`${name}: ${value}`);
  lines.push(request.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`);
  const payload = request.chunked
    ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')])
    : body;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no reply in time'));
    }, REQUEST_TIMEOUT_MS);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined); // EPIPE / ECONNRESET after the server answered and closed
    socket.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      // Skip interim 100 Continue replies.
      let text = all.toString('latin1');
      while (/^HTTP\/1\.1 1\d\d /.test(text)) text = text.slice(text.indexOf('\r\n\r\n') + 4);
      const split = text.indexOf('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
      if (split < 0 || !Number.isInteger(status)) {
        reject(new Error(`no reply: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const head = text.slice(0, split);
      resolve({
        status,
        contentType: /^content-type:\s*(.*)$/im.exec(head)?.[1] ?? '',
        body: Buffer.from(text.slice(split + 4), 'latin1'),
      });
    });
    socket.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]));
  });
}

/** What was wrong with a reply, or null. */
function checkReply(request: FuzzRequest, reply: Reply): string | null {
  const { op } = request;
  const sameMethod = request.method === op.method;
  const documented = Object.keys(
    (contract.document.paths as Record<string, Record<string, { responses: object }>>)[op.path]?.[
      op.method.toLowerCase()
    ]?.responses ?? {},
  );
  const declares = (status: number): boolean =>
    documented.includes(String(status)) || documented.includes(`${String(status)[0]}XX`);
  if (reply.status >= 500) {
    const allowed =
      sameMethod &&
      (documented.includes(String(reply.status)) || (reply.status === 503 && documented.includes('5XX')));
    if (!allowed) return `status ${reply.status}`;
  }
  if (reply.status >= 400) {
    if (!/^application\/problem\+json/.test(reply.contentType))
      return `${reply.status} with content-type '${reply.contentType}'`;
    let problem: { code?: string; status?: number; type?: string; message?: unknown };
    try {
      problem = JSON.parse(reply.body.toString('utf8'));
    } catch {
      return `${reply.status}: problem body is not JSON`;
    }
    const spec = ERRORS[problem.code as keyof typeof ERRORS];
    if (spec === undefined) return `${reply.status}: code '${problem.code}' is not in the registry`;
    if (spec.status !== reply.status || problem.status !== reply.status) {
      return `${reply.status}: code ${problem.code} has status ${spec.status}, body says ${problem.status}`;
    }
    if (typeof problem.message !== 'string' || problem.type !== `urn:aofq:error:${problem.code}`) {
      return `${reply.status}: malformed problem ${reply.body.toString('utf8').slice(0, 200)}`;
    }
    return null;
  }
  if (!sameMethod) return `status ${reply.status} for ${request.method} on ${op.method} ${op.path}`;
  // A JSON body that the server reads must be valid UTF-8 and within the limit: never accepted otherwise.
  const parsed =
    request.method !== 'GET' && /^application\/json\s*(;|$)/i.test(request.headers['content-type'] ?? '');
  if (parsed && request.kind === 'bad-utf8') return `accepted a body that is not UTF-8 (${reply.status})`;
  if (parsed && (request.body?.length ?? 0) > BODY_LIMIT)
    return `accepted a body over the limit (${reply.status})`;
  if (!declares(reply.status)) return `undocumented status ${reply.status}`;
  const schemaId = op.responses[reply.status];
  if (schemaId && /^application\/json/.test(reply.contentType)) {
    let value: unknown;
    try {
      value = JSON.parse(reply.body.toString('utf8'));
    } catch {
      return `${reply.status}: body is not JSON`;
    }
    const validate = responseValidator(schemaId);
    if (!validate(value))
      return `${reply.status}: body does not match ${schemaId}: ${ajv.errorsText(validate.errors)}`;
  }
  return null;
}

// biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
type Json = any;

async function call(
  server: ServerProcess,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? null : JSON.parse(text) };
}

/** enqueue → lease → ack on a fresh queue, as a client would. */
async function expectWorkingQueue(server: ServerProcess, queue: string): Promise<void> {
  const added = await call(server, 'POST', `/v1/queues/${queue}/jobs`, {
    name: 'after-fuzz',
    data: { ok: true },
  });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  const lease = await call(server, 'POST', `/v1/queues/${queue}/leases`, { count: 1 });
  expect(lease.body.jobs.map((j: { id: string }) => j.id)).toEqual([added.body.id]);
  const ack = await call(server, 'POST', `/v1/queues/${queue}/jobs/${added.body.id}/ack`, {
    token: lease.body.jobs[0].token,
  });
  expect(ack.body).toEqual({ id: added.body.id, state: 'completed' });
}

let server: ServerProcess;
let dir: string;
let sentinel: { id: string; body: unknown };
const knownIds: string[] = [];
const serverArgs = (): string[] => [
  '--dir',
  dir,
  '--body-limit',
  `${BODY_LIMIT / 1024}kb`,
  '--loglevel',
  'warning',
];
const serverEnv = { AOFQ_TOKENS: `admin1:admin:${ADMIN},producer1:producer:${PRODUCER}` };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aofq-fuzz-'));
  server = await startServer({ args: serverArgs(), env: serverEnv });
  const added = await call(server, 'POST', `/v1/queues/${SENTINEL_QUEUE}/jobs`, {
    name: 'sentinel',
    data: { keep: 'me', n: 1 },
  });
  expect(added.status).toBe(201);
  sentinel = {
    id: added.body.id,
    body: (await call(server, 'GET', `/v1/queues/${SENTINEL_QUEUE}/jobs/${added.body.id}`)).body,
  };
  await call(server, 'PUT', `/v1/queues/${QUEUE}`, { deadLetterQueue: 'fuzz-dlq' });
  for (let i = 0; i < 6; i++) {
    const job = await call(server, 'POST', `/v1/queues/${QUEUE}/jobs`, {
      name: `seed-${i}`,
      opts: { attempts: 3 },
    });
    knownIds.push(job.body.id);
  }
  await call(server, 'POST', `/v1/queues/${QUEUE}/leases`, { count: 2, leaseMs: 60_000 });
  knownIds.push('order-1', 'no-such-job');
});

afterAll(async () => {
  await server?.stop('SIGKILL').catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('HTTP fuzz of every operation in openapi.yaml', () => {
  it('never answers 5xx or an uncoded 4xx, and every 2xx matches its schema', async () => {
    const client = new Client(server.url, { pipelining: 1, keepAliveTimeout: 10_000 });
    const perOperation = new Map<string, number>();
    const perKind = new Map<BodyKind, number>();
    const statuses = new Map<number, number>();
    const faults: string[] = [];
    const arbitrary = fc.oneof(...contract.operations.map((op) => requestFor(op, knownIds)));
    const started = performance.now();
    try {
      const details = await fc.check(
        fc.asyncProperty(arbitrary, async (request) => {
          let reply: Reply;
          try {
            reply = await send(client, server.port, request);
          } catch (err) {
            faults.push(
              `${describeRequest(request)}\n  -> no reply: ${String(err)} ${(err as { code?: string }).code ?? ''}`,
            );
            throw err;
          }
          const key = `${request.op.method} ${request.op.path}`;
          perOperation.set(key, (perOperation.get(key) ?? 0) + 1);
          perKind.set(request.kind, (perKind.get(request.kind) ?? 0) + 1);
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
          const fault = checkReply(request, reply);
          if (fault !== null) {
            faults.push(
              `${describeRequest(request)}\n  -> ${fault}\n  ${reply.body.toString('utf8').slice(0, 300)}`,
            );
            throw new Error(fault);
          }
          if (server.child.exitCode !== null || server.child.signalCode !== null)
            throw new Error('the server exited');
        }),
        {
          numRuns: RUNS,
          interruptAfterTimeLimit: TIME_LIMIT_MS,
          markInterruptAsFailure: false,
          endOnFailure: true,
          ...(process.env.AOFQ_FUZZ_SEED ? { seed: Number(process.env.AOFQ_FUZZ_SEED) } : {}),
        },
      );
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `http fuzz: ${details.numRuns} requests in ${seconds.toFixed(1)} s (seed ${details.seed}); statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}; bodies ${JSON.stringify(Object.fromEntries(perKind))}\n`,
      );
      expect(
        details.failed,
        `seed ${details.seed}; first fault:\n${faults[0]}\nshrunk:\n${faults.at(-1)}`,
      ).toBe(false);
      expect(details.numRuns).toBeGreaterThanOrEqual(MIN_RUNS);
      // Every operation and every kind of body was exercised.
      for (const op of contract.operations) {
        expect(
          perOperation.get(`${op.method} ${op.path}`) ?? 0,
          `${op.method} ${op.path}`,
        ).toBeGreaterThanOrEqual(5);
      }
      for (const kind of [
        'valid',
        'shaped',
        'json',
        'deep',
        'near-limit',
        'bad-utf8',
        'bytes',
        'empty',
        'bom',
        'none',
      ] as const) {
        expect(perKind.get(kind) ?? 0, kind).toBeGreaterThan(0);
      }
      // Both sides of the contract were reached: accepted requests and refused ones.
      const count = (from: number, to: number): number =>
        [...statuses].filter(([s]) => s >= from && s < to).reduce((sum, [, n]) => sum + n, 0);
      expect(count(200, 300)).toBeGreaterThan(details.numRuns / 20);
      expect(count(400, 500)).toBeGreaterThan(details.numRuns / 4);
    } finally {
      await client.close();
    }
  });

  it('answers malformed HTTP with coded problems, or closes the connection', async () => {
    const methods = fc.constantFrom(
      'GET',
      'POST',
      'PUT',
      'G\u0000T',
      'get',
      '',
      'P O',
      'CONNECT',
      'X'.repeat(40),
    );
    const targets = fc.oneof(
      fc.constantFrom(
        '/healthz',
        '/v1/queues',
        '/v1/queues/fuzz/jobs',
        '*',
        '',
        'http://x/y',
        '/%',
        '/\u00ff',
      ),
      fc.string({ unit: 'binary-ascii', maxLength: 40 }),
    );
    const versions = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1x', '', 'HTTP/9');
    const headers = fc.array(
      fc.oneof(
        fc.constantFrom(
          'Host: x',
          'Content-Length: -1',
          'Content-Length: 1, 2',
          'Content-Length: 99999999999999999999',
          'Transfer-Encoding: chunked',
          'Transfer-Encoding: gzip, chunked',
          'Bad Header: x',
          ': empty',
          `X-Big: ${'a'.repeat(20_000)}`,
          'Content-Type: application/json',
          '\u0000: nul',
        ),
        fc.string({ unit: 'binary-ascii', maxLength: 30 }),
      ),
      { maxLength: 4 },
    );
    const tails = fc.oneof(
      fc.constant(''),
      fc.constantFrom('0\r\n\r\n', 'zz\r\n', '{"name":1}'),
      fc.string({ unit: 'binary', maxLength: 30 }),
    );
    let answered = 0;
    const faults: string[] = [];
    const details = await fc.check(
      fc.asyncProperty(
        methods,
        targets,
        versions,
        headers,
        tails,
        async (method, target, version, lines, tail) => {
          const head = `${method} ${target} ${version}\r\n${lines.join('\r\n')}${lines.length ? '\r\n' : ''}\r\n`;
          const raw = await rawExchange(
            server.port,
            Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(tail, 'utf8')]),
          );
          if (raw === null) return; // closed (or still waiting for a body) without an answer
          answered++;
          const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw.head)?.[1]);
          const fail = (fault: string): never => {
            const sent = `${JSON.stringify(head.slice(0, 300))} + ${JSON.stringify(tail)}`;
            faults.push(`${sent}\n  -> ${fault}\n  ${raw.head.slice(0, 300)}\n  ${raw.body.slice(0, 200)}`);
            throw new Error(fault);
          };
          if (!(status < 500)) fail(`status ${status}`);
          if (status >= 400) {
            const type = /^content-type:\s*(.*)$/im.exec(raw.head)?.[1] ?? '';
            if (!/^application\/problem\+json/.test(type)) fail(`${status} with content-type '${type}'`);
            const code = (JSON.parse(raw.body) as { code?: string }).code as keyof typeof ERRORS;
            if (ERRORS[code]?.status !== status) fail(`${status}: code ${code}`);
          }
        },
      ),
      {
        numRuns: RAW_RUNS,
        interruptAfterTimeLimit: 20_000,
        markInterruptAsFailure: false,
        endOnFailure: true,
      },
    );
    expect(
      details.failed,
      `seed ${details.seed}; first fault:\n${faults[0]}\nshrunk:\n${faults.at(-1)}`,
    ).toBe(false);
    expect(details.numRuns).toBeGreaterThanOrEqual(RAW_RUNS / 3);
    expect(answered).toBeGreaterThan(details.numRuns / 4);
    expect(server.child.exitCode).toBeNull();
  });

  it('leaves the server healthy, its data intact, and an AOF that loads again', async () => {
    expect(server.child.exitCode).toBeNull();
    expect(server.child.signalCode).toBeNull();
    expect((await call(server, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    expect((await call(server, 'GET', '/readyz')).status).toBe(200);
    await expectWorkingQueue(server, 'after-fuzz');
    expect((await call(server, 'GET', `/v1/queues/${SENTINEL_QUEUE}/jobs/${sentinel.id}`)).body).toEqual(
      sentinel.body,
    );
    const queues = (await call(server, 'GET', '/v1/queues')).body.queues as string[];
    expect(queues).toContain(SENTINEL_QUEUE);

    expect(await server.stop('SIGTERM')).toBe(0);
    server = await startServer({ args: serverArgs(), env: serverEnv });
    expect((await call(server, 'GET', '/v1/queues')).body.queues).toEqual(queues);
    expect((await call(server, 'GET', `/v1/queues/${SENTINEL_QUEUE}/jobs/${sentinel.id}`)).body).toEqual(
      sentinel.body,
    );
    await expectWorkingQueue(server, 'after-restart');
  });
});

/** Write raw bytes, read one reply or until the server closes or 1 s passes; its head and body, or null if none. */
function rawExchange(port: number, bytes: Buffer): Promise<{ head: string; body: string } | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      if (text === '') resolve(null);
      else {
        const split = text.indexOf('\r\n\r\n');
        resolve({
          head: split < 0 ? text : text.slice(0, split),
          body: split < 0 ? '' : text.slice(split + 4),
        });
      }
    };
    const timer = setTimeout(finish, 1000);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      // A complete reply (head and Content-Length bytes of body): no need to wait for the close.
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const length = /^content-length:\s*(\d+)/im.exec(text.slice(0, split))?.[1];
      if (
        split >= 0 &&
        length !== undefined &&
        Buffer.byteLength(text.slice(split + 4), 'latin1') >= Number(length)
      )
        finish();
    });
    socket.on('close', finish);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') finish();
      else reject(err);
    });
    socket.write(bytes);
  });
}
