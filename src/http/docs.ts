/**
 * The browsable API docs at GET /docs: @fastify/swagger in static mode with
 * our openapi.yaml, shown by @fastify/swagger-ui. The contract points at the
 * schema files in api/ (`$ref: api/JobJson.json`); the page gets one
 * self-contained copy instead, those files inlined as components/schemas, so
 * that the browser needs nothing but /docs/json and the UI's assets (no file of
 * the package is served). Its `servers` is the serving host itself, so that
 * "Try it out" calls this server. The page is public; the calls it makes carry
 * whatever bearer token is entered under "Authorize".
 */
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import type { Contract } from './contract.js';

export const DOCS_PREFIX = '/docs';

/** `api/JobJson.json` or `JobJson.json` → `#/components/schemas/JobJson`. */
function inlineRef(ref: string): string {
  const match = /^(?:\.\/)?(?:api\/)?([A-Za-z0-9_-]+)\.json$/.exec(ref);
  return match === null ? ref : `#/components/schemas/${match[1]}`;
}

function rewrite(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewrite);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string') out[key] = inlineRef(inner);
      else if (key !== '$id' && key !== '$schema') out[key] = rewrite(inner);
    }
    return out;
  }
  return value;
}

/** The contract as one document: api/*.json as components/schemas, every `$ref` pointing there. */
export function docsDocument(contract: Contract): Record<string, unknown> {
  const document = rewrite(contract.document) as Record<string, unknown>;
  const components = (document.components ?? {}) as Record<string, unknown>;
  const schemas: Record<string, unknown> = { ...((components.schemas ?? {}) as Record<string, unknown>) };
  for (const schema of contract.schemas) schemas[schema.$id.replace(/\.json$/, '')] = rewrite(schema);
  return { ...document, servers: [{ url: '/' }], components: { ...components, schemas } };
}

/** Register /docs (the UI), /docs/json and /docs/yaml (the inlined document) and the UI's assets. */
export function registerDocs(app: FastifyInstance, contract: Contract): void {
  const document = docsDocument(contract);
  app.register(fastifySwagger, {
    mode: 'static',
    // biome-ignore lint/suspicious/noExplicitAny: the document is openapi.yaml's, checked by the contract tests
    specification: { document: document as any },
  });
  app.register(fastifySwaggerUi, {
    routePrefix: DOCS_PREFIX,
    uiConfig: { deepLinking: true, persistAuthorization: false },
  });
}
