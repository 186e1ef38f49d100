/**
 * The HTTP contract, loaded from the files the clients read: `openapi.yaml`
 * and the JSON Schemas in `api/`. The server builds its routes, validators and
 * serializers from these same files (never copies), so the document and the
 * running server cannot drift apart.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { assert } from '../util/assert.js';
import type { Permission } from './auth.js';

export type JsonSchema = Record<string, unknown> & { $id: string };

export interface QueryParameter {
  readonly name: string;
  readonly required: boolean;
  /** The parameter's schema as written in openapi.yaml, with `$ref`s rewritten to schema ids. */
  readonly schema: Record<string, unknown>;
}

export interface Operation {
  readonly operationId: string;
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** OpenAPI path, e.g. /v1/queues/{queue}. */
  readonly path: string;
  /** fastify path, e.g. /v1/queues/:queue. */
  readonly route: string;
  readonly permission: Permission;
  /** Id of the request body schema, e.g. EnqueueRequest.json. */
  readonly body: string | null;
  readonly pathParameters: Readonly<Record<string, string>>;
  readonly query: readonly QueryParameter[];
  /** Success status → id of the response schema (null: no JSON body). */
  readonly responses: Readonly<Record<number, string | null>>;
}

export interface Contract {
  readonly yamlText: string;
  readonly document: Record<string, unknown>;
  readonly schemas: readonly JsonSchema[];
  readonly operations: readonly Operation[];
}

/** The package root: src/http and dist/http are both two levels below it. */
export const PACKAGE_ROOT = new URL('../../', import.meta.url);
const MAX_SCHEMA_FILES = 1000;
const METHODS = ['get', 'post', 'put', 'delete'] as const;
const PERMISSIONS: readonly Permission[] = ['producer', 'consumer', 'admin', 'read', 'public'];

/** `api/JobJson.json` → `JobJson.json`; anything else is left alone. */
function schemaIdOf(ref: string): string {
  const match = /^(?:\.\/)?api\/([A-Za-z0-9_-]+\.json)$/.exec(ref);
  assert(match !== null, `openapi.yaml: $ref '${ref}' does not name a file in api/`);
  return match[1] as string;
}

/** Copy a schema from openapi.yaml, rewriting `$ref: api/X.json` to `$ref: X.json`. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      out[key] = key === '$ref' && typeof inner === 'string' ? schemaIdOf(inner) : rewriteRefs(inner);
    }
    return out;
  }
  return value;
}

function record(value: unknown, what: string): Record<string, unknown> {
  assert(value !== null && typeof value === 'object' && !Array.isArray(value), `${what} must be an object`);
  return value as Record<string, unknown>;
}

function resolveParameter(document: Record<string, unknown>, parameter: unknown): Record<string, unknown> {
  const p = record(parameter, 'parameter');
  if (typeof p.$ref !== 'string') return p;
  const match = /^#\/components\/parameters\/(\w+)$/.exec(p.$ref);
  assert(match !== null, `unsupported parameter $ref ${p.$ref}`);
  const components = record(document.components, 'components');
  return record(record(components.parameters, 'parameters')[match[1] as string], `parameter ${p.$ref}`);
}

export function loadSchemas(root: URL = PACKAGE_ROOT): JsonSchema[] {
  const dir = new URL('api/', root);
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .sort();
  assert(files.length > 0 && files.length <= MAX_SCHEMA_FILES, 'api/ holds the JSON Schemas');
  return files.map((name) => {
    const schema = JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as JsonSchema;
    assert(schema.$id === name, `api/${name}: $id must be '${name}'`);
    return schema;
  });
}

export function parseOperations(document: Record<string, unknown>): Operation[] {
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(record(document.paths, 'paths'))) {
    for (const method of METHODS) {
      const raw = record(item, path)[method];
      if (raw === undefined) continue;
      const op = record(raw, `${method} ${path}`);
      const operationId = op.operationId;
      assert(typeof operationId === 'string', `${method} ${path}: operationId`);
      const role = op['x-aofq-role'] ?? 'public';
      assert(PERMISSIONS.includes(role as Permission), `${operationId}: x-aofq-role ${String(role)}`);
      const pathParameters: Record<string, string> = {};
      const query: QueryParameter[] = [];
      for (const parameter of (op.parameters as unknown[] | undefined) ?? []) {
        const p = resolveParameter(document, parameter);
        const schema = rewriteRefs(p.schema) as Record<string, unknown>;
        if (p.in === 'path') {
          assert(typeof schema.$ref === 'string', `${operationId}: path parameters $ref a schema`);
          pathParameters[String(p.name)] = schema.$ref as string;
        } else {
          assert(p.in === 'query', `${operationId}: parameter in ${String(p.in)}`);
          query.push({ name: String(p.name), required: p.required === true, schema });
        }
      }
      let body: string | null = null;
      if (op.requestBody !== undefined) {
        const content = record(record(op.requestBody, 'requestBody').content, 'content');
        const ref = record(record(content['application/json'], 'json').schema, 'schema').$ref;
        assert(typeof ref === 'string', `${operationId}: request body $ref`);
        body = schemaIdOf(ref);
      }
      const responses: Record<number, string | null> = {};
      for (const [status, response] of Object.entries(record(op.responses, 'responses'))) {
        if (!/^2\d\d$/.test(status)) continue;
        const content = record(response, status).content as Record<string, unknown> | undefined;
        const json = content?.['application/json'] as { schema?: { $ref?: string } } | undefined;
        const ref = json?.schema?.$ref;
        responses[Number(status)] = typeof ref === 'string' ? schemaIdOf(ref) : null;
      }
      operations.push({
        operationId,
        method: method.toUpperCase() as Operation['method'],
        path,
        route: path.replace(/\{(\w+)\}/g, ':$1'),
        permission: role as Permission,
        body,
        pathParameters,
        query,
        responses,
      });
    }
  }
  return operations;
}

/**
 * `npm run build` also writes dist/openapi.json: openapi.yaml parsed, with the
 * SHA-256 of the YAML text it came from. Parsing the YAML took about 0.1 s of
 * every start; the JSON is used only while its hash matches the YAML beside it.
 */
export const PARSED_CONTRACT_FILE = 'dist/openapi.json';

export function contractDigest(yamlText: string): string {
  return createHash('sha256').update(yamlText).digest('hex');
}

function parsedDocument(root: URL, yamlText: string): unknown {
  try {
    const cached = JSON.parse(readFileSync(new URL(PARSED_CONTRACT_FILE, root), 'utf8')) as {
      sha256?: unknown;
      document?: unknown;
    };
    if (cached.sha256 === contractDigest(yamlText) && cached.document !== undefined) return cached.document;
  } catch {
    // No build output (running from the sources), or an unreadable one: parse the YAML.
  }
  return parseYaml(yamlText);
}

export function loadContract(root: URL = PACKAGE_ROOT): Contract {
  const yamlText = readFileSync(new URL('openapi.yaml', root), 'utf8');
  const document = record(parsedDocument(root, yamlText), 'openapi.yaml');
  return { yamlText, document, schemas: loadSchemas(root), operations: parseOperations(document) };
}
