/**
 * The parsed contract that `npm run build` writes (dist/openapi.json) is used
 * only while its SHA-256 matches openapi.yaml; otherwise the YAML is parsed.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { contractDigest, loadContract, PACKAGE_ROOT, PARSED_CONTRACT_FILE } from '../../src/http/contract.js';

const root = mkdtempSync(join(tmpdir(), 'aofq-contract-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const yamlText = readFileSync(new URL('openapi.yaml', PACKAGE_ROOT), 'utf8');
cpSync(new URL('api', PACKAGE_ROOT), join(root, 'api'), { recursive: true });
writeFileSync(join(root, 'openapi.yaml'), yamlText);
mkdirSync(join(root, 'dist'));
const rootUrl = pathToFileURL(`${root}/`);

function writeCache(sha256: string, title: string): void {
  const fromYaml = loadContract(PACKAGE_ROOT).document as { info: Record<string, unknown> };
  const document = { ...fromYaml, info: { ...fromYaml.info, title } };
  writeFileSync(join(root, PARSED_CONTRACT_FILE), JSON.stringify({ sha256, document }));
}

function builtCache(): { sha256: string; document: unknown } | null {
  try {
    const cache = JSON.parse(readFileSync(new URL(PARSED_CONTRACT_FILE, PACKAGE_ROOT), 'utf8'));
    return cache.sha256 === contractDigest(yamlText) ? cache : null;
  } catch {
    return null;
  }
}
const freshBuild = builtCache();

const titleOf = (): unknown => (loadContract(rootUrl).document as { info: { title: unknown } }).info.title;

describe('the parsed contract cache', () => {
  it('is used when its hash matches the YAML, and ignored when stale or broken', () => {
    const yamlTitle = titleOf();
    expect(typeof yamlTitle).toBe('string');
    writeCache(contractDigest(yamlText), 'from the cache');
    expect(titleOf()).toBe('from the cache');
    writeCache(contractDigest(`${yamlText}\n# edited`), 'stale');
    expect(titleOf()).toBe(yamlTitle);
    writeFileSync(join(root, PARSED_CONTRACT_FILE), '{not json');
    expect(titleOf()).toBe(yamlTitle);
  });

  // npm test builds before vitest runs, so this runs there; a bare vitest run without a build shows it skipped.
  it.runIf(freshBuild !== null)('holds exactly what parsing the YAML gives, once built', () => {
    writeFileSync(join(root, PARSED_CONTRACT_FILE), '');
    expect(freshBuild?.document).toEqual(loadContract(rootUrl).document);
  });
});
