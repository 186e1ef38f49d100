/**
 * Checks of openapi.yaml and api/*.json that a generic linter does not make
 * (`npm run lint:api` runs Redocly's rules; see redocly.yaml): every `$ref`
 * resolves to a file in api/, the fixed /v1 operations each exist exactly once
 * with their method and path, every schema compiles with ajv in strict mode,
 * objects are closed, and the server has a handler per operation.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadContract, PACKAGE_ROOT } from '../../src/http/contract.js';
import { HANDLERS } from '../../src/http/handlers.js';

const FIXED: ReadonlyArray<[string, string, string]> = [
  ['listQueues', 'get', '/v1/queues'],
  ['getQueue', 'get', '/v1/queues/{queue}'],
  ['updateQueue', 'put', '/v1/queues/{queue}'],
  ['deleteQueue', 'delete', '/v1/queues/{queue}'],
  ['pauseQueue', 'post', '/v1/queues/{queue}/pause'],
  ['resumeQueue', 'post', '/v1/queues/{queue}/resume'],
  ['drainQueue', 'post', '/v1/queues/{queue}/drain'],
  ['cleanQueue', 'post', '/v1/queues/{queue}/clean'],
  ['enqueueJob', 'post', '/v1/queues/{queue}/jobs'],
  ['enqueueJobs', 'post', '/v1/queues/{queue}/jobs/bulk'],
  ['leaseJobs', 'post', '/v1/queues/{queue}/leases'],
  ['ackJob', 'post', '/v1/queues/{queue}/jobs/{id}/ack'],
  ['nackJob', 'post', '/v1/queues/{queue}/jobs/{id}/nack'],
  ['extendLease', 'post', '/v1/queues/{queue}/jobs/{id}/extend'],
  ['releaseJob', 'post', '/v1/queues/{queue}/jobs/{id}/release'],
  ['updateJobProgress', 'post', '/v1/queues/{queue}/jobs/{id}/progress'],
  ['getJob', 'get', '/v1/queues/{queue}/jobs/{id}'],
  ['listJobs', 'get', '/v1/queues/{queue}/jobs'],
  ['removeJob', 'delete', '/v1/queues/{queue}/jobs/{id}'],
  ['retryJob', 'post', '/v1/queues/{queue}/jobs/{id}/retry'],
  ['promoteJob', 'post', '/v1/queues/{queue}/jobs/{id}/promote'],
  ['redriveDeadLetters', 'post', '/v1/queues/{queue}/redrive'],
  ['getInfo', 'get', '/v1/admin/info'],
  ['rewriteAof', 'post', '/v1/admin/rewrite'],
  ['getConfig', 'get', '/v1/admin/config'],
  ['setConfig', 'put', '/v1/admin/config'],
];

const apiDir = new URL('api/', PACKAGE_ROOT);
const apiFiles = new Set(readdirSync(apiDir).filter((f) => f.endsWith('.json')));
const document = parse(readFileSync(new URL('openapi.yaml', PACKAGE_ROOT), 'utf8')) as Record<
  string,
  unknown
>;

function collectRefs(value: unknown, out: string[]): string[] {
  if (Array.isArray(value)) for (const item of value) collectRefs(item, out);
  else if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string') out.push(inner);
      else collectRefs(inner, out);
    }
  }
  return out;
}

function collectObjects(value: unknown, out: Record<string, unknown>[]): Record<string, unknown>[] {
  if (Array.isArray(value)) for (const item of value) collectObjects(item, out);
  else if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (object.type === 'object') out.push(object);
    for (const inner of Object.values(object)) collectObjects(inner, out);
  }
  return out;
}

describe('openapi.yaml', () => {
  it('is OpenAPI 3.1', () => {
    expect(document.openapi).toBe('3.1.0');
  });

  it('has every fixed operationId exactly once, with its method and path', () => {
    const found = new Map<string, string[]>();
    for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
      for (const [method, op] of Object.entries(item)) {
        const id = (op as { operationId?: string }).operationId;
        if (id !== undefined) found.set(id, [...(found.get(id) ?? []), `${method} ${path}`]);
      }
    }
    for (const [id, method, path] of FIXED) expect(found.get(id), id).toEqual([`${method} ${path}`]);
    const all = [...found.values()].flat();
    expect(new Set(all).size).toBe(all.length);
  });

  it('gives every operation a 2xx response and problem+json errors', () => {
    for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, unknown>>)) {
      for (const [method, raw] of Object.entries(item)) {
        const op = raw as { operationId: string; responses?: Record<string, { content?: object }> };
        expect(op.responses, `${method} ${path}`).toBeTypeOf('object');
        const statuses = Object.keys(op.responses ?? {});
        expect(
          statuses.some((s) => /^2\d\d$/.test(s)),
          op.operationId,
        ).toBe(true);
        if (path.startsWith('/v1/')) {
          expect(op.responses?.['4XX']?.content, op.operationId).toHaveProperty(['application/problem+json']);
          expect(op.responses?.['5XX']?.content, op.operationId).toHaveProperty(['application/problem+json']);
        }
      }
    }
  });

  it('resolves every $ref to a file in api/ or a component of the document', () => {
    const refs = collectRefs(document, []);
    expect(refs.length).toBeGreaterThan(30);
    const components = document.components as Record<string, Record<string, unknown>>;
    for (const ref of refs) {
      if (ref.startsWith('#/components/')) {
        const [, , kind, name] = ref.split('/');
        expect(components[kind as string]?.[name as string], ref).toBeDefined();
      } else {
        expect(ref, ref).toMatch(/^api\/[A-Za-z0-9_-]+\.json$/);
        expect(apiFiles.has(ref.slice(4)), ref).toBe(true);
      }
    }
  });

  it('resolves every $ref inside api/*.json to a sibling file', () => {
    for (const file of apiFiles) {
      const schema = JSON.parse(readFileSync(new URL(file, apiDir), 'utf8'));
      expect(schema.$id, file).toBe(file);
      for (const ref of collectRefs(schema, [])) expect(apiFiles.has(ref), `${file}: ${ref}`).toBe(true);
    }
  });

  it('compiles every schema with ajv in strict mode, with closed objects', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true });
    const schemas = [...apiFiles].map((file) => JSON.parse(readFileSync(new URL(file, apiDir), 'utf8')));
    for (const schema of schemas) ajv.addSchema(schema);
    for (const schema of schemas) {
      expect(() => ajv.getSchema(schema.$id), schema.$id).not.toThrow();
      expect(ajv.getSchema(schema.$id), schema.$id).toBeTypeOf('function');
      for (const object of collectObjects(schema, [])) {
        // A closed object lists its properties; a map (additionalProperties: schema) is also fine.
        expect(object.additionalProperties, `${schema.$id}: objects are closed`).toBeDefined();
      }
    }
  });

  it('gives the server a handler for every /v1 operation, and no handler without one', () => {
    const contract = loadContract();
    const v1 = contract.operations.filter((op) => op.path.startsWith('/v1/')).map((op) => op.operationId);
    expect(v1.sort()).toEqual(Object.keys(HANDLERS).sort());
    expect(v1.sort()).toEqual(FIXED.map(([id]) => id).sort());
  });

  it('validates example bodies as documented', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true });
    for (const file of apiFiles) ajv.addSchema(JSON.parse(readFileSync(new URL(file, apiDir), 'utf8')));
    const enqueue = ajv.getSchema('EnqueueRequest.json');
    expect(enqueue?.({ name: 'email', data: { to: 'a@b.c' }, opts: { attempts: 3, backoff: 1000 } })).toBe(
      true,
    );
    expect(enqueue?.({ name: 'email', extra: 1 })).toBe(false);
    expect(enqueue?.({ name: 'email', opts: { priority: -1 } })).toBe(false);
    const lease = ajv.getSchema('LeaseRequest.json');
    expect(lease?.({ count: 10, waitMs: 30_000 })).toBe(true);
    expect(lease?.({ waitMs: 30_001 })).toBe(false);
  });
});
