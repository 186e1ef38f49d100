/**
 * The WebSocket API's message schemas: one JSON Schema per message type in
 * `api/ws/` (client requests and server messages), compiled with ajv in strict
 * mode next to the HTTP schemas of `api/` that they reference (QueueName,
 * JobId, JobsOptions, EnqueueRequest, JobJson). The files are the contract;
 * nothing here copies them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { assert } from '../util/assert.js';
import { LazyCompiles } from './lazy-compile.js';

/** Messages a client sends. */
export const CLIENT_MESSAGE_TYPES = [
  'auth',
  'subscribe',
  'unsubscribe',
  'ack',
  'ackBatch',
  'nack',
  'release',
  'extend',
  'enqueue',
  'enqueueBatch',
  'events',
  'stopEvents',
] as const;
export type ClientMessageType = (typeof CLIENT_MESSAGE_TYPES)[number];

/** Messages the server sends. */
export const SERVER_MESSAGE_TYPES = ['ok', 'error', 'job', 'jobs', 'event', 'events-gap'] as const;
export type ServerMessageType = (typeof SERVER_MESSAGE_TYPES)[number];

const MAX_SCHEMA_FILES = 1000;
/** The package root: src/http and dist/http are both two levels below it. */
const PACKAGE_ROOT = new URL('../../', import.meta.url);

export interface WsSchemas {
  /** Validators of client messages by type. */
  readonly client: ReadonlyMap<string, ValidateFunction>;
  /** Validators of server messages by type (tests check what the server sends). */
  readonly server: ReadonlyMap<string, ValidateFunction>;
}

function readSchemas(dir: URL, prefix: string): Array<Record<string, unknown>> {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort();
  assert(files.length > 0 && files.length <= MAX_SCHEMA_FILES, `${dir.pathname} holds JSON Schemas`);
  return files.map((name) => {
    const schema = JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as Record<string, unknown>;
    assert(schema.$id === `${prefix}${name}`, `${name}: $id must be '${prefix}${name}'`);
    return schema;
  });
}

let cached: WsSchemas | null = null;
/** The process's validators compile on first use, or when warmed (lazy-compile.ts). */
const lazy = new LazyCompiles();

/** Compile the validators of the message types no message has used yet, one per event-loop turn. */
export function warmWsSchemas(): Promise<void> {
  return lazy.warm();
}

/** Load the schemas once per process; each validator compiles on first use (or warmWsSchemas). */
export function loadWsSchemas(root: URL = PACKAGE_ROOT): WsSchemas {
  if (cached !== null && root === PACKAGE_ROOT) return cached;
  // Checked against the meta-schema by the contract tests; not again at every start.
  const ajv = new Ajv({
    strict: true,
    allowUnionTypes: true,
    allErrors: false,
    useDefaults: false,
    validateSchema: false,
  });
  for (const schema of readSchemas(new URL('api/', root), '')) ajv.addSchema(schema);
  for (const schema of readSchemas(new URL('api/ws/', root), 'ws/')) ajv.addSchema(schema);
  const compile = (type: string): ValidateFunction =>
    lazy.validator(() => {
      const validate = ajv.getSchema(`ws/${type}.json`);
      assert(validate !== undefined, `api/ws/${type}.json is missing`);
      return validate;
    });
  const schemas: WsSchemas = {
    client: new Map(CLIENT_MESSAGE_TYPES.map((type) => [type, compile(type)])),
    server: new Map(SERVER_MESSAGE_TYPES.map((type) => [type, compile(type)])),
  };
  if (root === PACKAGE_ROOT) cached = schemas;
  return schemas;
}

/** The first schema error as one short line. */
export function describeSchemaError(errors: readonly ErrorObject[] | null | undefined): string {
  const first = errors?.[0];
  if (first === undefined) return 'does not match its schema';
  const where = first.instancePath === '' ? 'message' : first.instancePath.slice(1).replace(/\//g, '.');
  const extra =
    first.keyword === 'additionalProperties'
      ? ` '${String((first.params as { additionalProperty?: unknown }).additionalProperty).slice(0, 64)}'`
      : '';
  return `${where} ${first.message ?? 'is invalid'}${extra}`.slice(0, 300);
}
