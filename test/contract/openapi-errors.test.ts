/**
 * The error registry, docs/ERRORS.md and the Problem schema of openapi.yaml
 * list the same codes. Regenerate the last two with:
 *   node --import tsx src/http/error-docs.ts --write && npx biome format --write docs/ERRORS.md
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors/index.js';
import { ERRORS_DOC_URL, PROBLEM_SCHEMA_URL } from '../../src/http/error-docs.js';

describe('error codes', () => {
  const codes = Object.keys(ERRORS).sort();

  it('docs/ERRORS.md lists every code with its status, prefix and message', () => {
    const hint =
      'run: node --import tsx src/http/error-docs.ts --write && npx biome format --write docs/ERRORS.md';
    const doc = readFileSync(ERRORS_DOC_URL, 'utf8');
    // Table rows, whatever padding the formatter added: | `CODE` | status | `PREFIX` | message |
    const rows = [
      ...doc.matchAll(/^\|\s*`(AOFQ_ERR_[A-Z0-9_]+)`\s*\|\s*(\d{3})\s*\|\s*`([A-Z]+)`\s*\|(.*)\|\s*$/gm),
    ];
    const listed = new Map(
      rows.map((m) => [m[1], { status: Number(m[2]), resp: m[3], message: m[4]?.trim() }]),
    );
    expect([...listed.keys()].sort(), hint).toEqual(codes);
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(listed.get(code), `${code}: ${hint}`).toEqual({
        status: spec.status,
        resp: spec.resp,
        message: spec.message.replace(/\|/g, '\\|'),
      });
    }
  });

  it('api/Problem.json lists every code as its code enum', () => {
    const problem = JSON.parse(readFileSync(PROBLEM_SCHEMA_URL, 'utf8'));
    expect(
      [...problem.properties.code.enum].sort(),
      'run: node --import tsx src/http/error-docs.ts --write',
    ).toEqual(codes);
  });

  it('every code has an HTTP error status and the AOFQ_ERR_ prefix', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^AOFQ_ERR_[A-Z0-9_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
    }
  });
});
