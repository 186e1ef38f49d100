/**
 * docs/ERRORS.md and the `code` enum of api/Problem.json, generated from the
 * error registry so that the three cannot disagree. Regenerate after adding a
 * code:  node --import tsx src/http/error-docs.ts --write && npx biome format --write docs/ERRORS.md
 * (test/contract/openapi-errors.test.ts fails until you do).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ERRORS, type ErrorCode } from '../errors/index.js';
import { PACKAGE_ROOT } from './contract.js';

const HEADER = `# aofq error codes

Every error aofq reports carries one of these codes. Over HTTP it is the
\`code\` field of an \`application/problem+json\` body (RFC 9457) with the HTTP
status below; on the RESP port it is an error reply starting with the Redis
prefix below. Clients match on \`code\`; the message is for people, and
\`{name}\` in a message is filled in from the error's details.

Generated from \`src/errors/registry.ts\` by \`node --import tsx src/http/error-docs.ts --write\`
(then \`npx biome format --write docs/ERRORS.md\`);
\`test/contract/openapi-errors.test.ts\` checks that this page, the registry and
the \`Problem\` schema of openapi.yaml (\`api/Problem.json\`) agree.

| code | HTTP | RESP | message |
|---|---|---|---|
`;

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

export function renderErrorsMarkdown(): string {
  const rows = (Object.keys(ERRORS) as ErrorCode[]).map((code) => {
    const spec = ERRORS[code];
    return `| \`${code}\` | ${spec.status} | \`${spec.resp}\` | ${escapeCell(spec.message)} |`;
  });
  return `${HEADER}${rows.join('\n')}\n`;
}

/** api/Problem.json with its `code` enum set to the registry's codes. */
export function renderProblemSchema(current: string): string {
  const schema = JSON.parse(current) as { properties: { code: { enum: string[] } } };
  schema.properties.code.enum = Object.keys(ERRORS);
  return `${JSON.stringify(schema, null, 2)}\n`;
}

export const ERRORS_DOC_URL = new URL('docs/ERRORS.md', PACKAGE_ROOT);
export const PROBLEM_SCHEMA_URL = new URL('api/Problem.json', PACKAGE_ROOT);

if (process.argv[1]?.endsWith('error-docs.ts') && process.argv.includes('--write')) {
  writeFileSync(ERRORS_DOC_URL, renderErrorsMarkdown());
  writeFileSync(PROBLEM_SCHEMA_URL, renderProblemSchema(readFileSync(PROBLEM_SCHEMA_URL, 'utf8')));
  process.stdout.write('wrote docs/ERRORS.md and api/Problem.json\n');
}
