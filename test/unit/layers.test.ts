/**
 * The layer check (dependency-cruiser with the repo's own config) fails on
 * forbidden imports and passes a clean tree. Runs on fixture trees in a temp
 * directory, never in the real src/.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../..');
const DEPCRUISE = join(REPO, 'node_modules/.bin/depcruise');

const TSCONFIG = JSON.stringify({
  compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true },
  include: ['src'],
});

const directories: string[] = [];

afterEach(async () => {
  for (const directory of directories.splice(0)) await rm(directory, { recursive: true, force: true });
});

async function fixture(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'aofq-layers-'));
  directories.push(root);
  await copyFile(join(REPO, '.dependency-cruiser.cjs'), join(root, '.dependency-cruiser.cjs'));
  await writeFile(join(root, 'tsconfig.json'), TSCONFIG);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

function depcruise(cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(
      DEPCRUISE,
      ['src', '--config', '.dependency-cruiser.cjs'],
      { cwd, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        done({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

describe('layer check', () => {
  it('fails on I/O in store, store importing queue, and a cycle, naming each rule', async () => {
    const root = await fixture({
      'src/util/a.ts': 'export const a = 1;\n',
      'src/store/b.ts': "import { readFileSync } from 'node:fs';\nexport const b = readFileSync;\n",
      'src/store/c.ts': "import { d } from '../queue/d.js';\nexport const c = d;\n",
      'src/queue/d.ts': "import { a } from '../util/a.js';\nexport const d = a;\n",
      'src/util/x.ts': "import { y } from './y.js';\nexport const x = (): unknown => y;\n",
      'src/util/y.ts': "import { x } from './x.js';\nexport const y = (): unknown => x;\n",
    });
    const { code, output } = await depcruise(root);
    expect(code).not.toBe(0);
    expect(output).toMatch(/error pure-state-no-io: src\/store\/b\.ts → (node:)?fs/);
    expect(output).toMatch(/error layer-store: src\/store\/c\.ts → src\/queue\/d\.ts/);
    expect(output).toMatch(/error no-cycles: src\/util\/[xy]\.ts/);
    expect(output).not.toContain('layer-queue');
  });

  it('passes a tree that respects the layers', async () => {
    const root = await fixture({
      'src/util/a.ts': 'export const a = 1;\n',
      'src/resp/r.ts': "import { a } from '../util/a.js';\nexport const r = a;\n",
      'src/store/b.ts': "import { r } from '../resp/r.js';\nexport const b = r;\n",
      'src/queue/d.ts': "import { createHash } from 'node:crypto';\nexport const d = createHash;\n",
      'src/node/n.ts':
        "import { b } from '../store/b.js';\nimport { d } from '../queue/d.js';\nimport { readFileSync } from 'node:fs';\nexport const n = [b, d, readFileSync];\n",
    });
    const { code, output } = await depcruise(root);
    expect(output).toContain('no dependency violations found');
    expect(code).toBe(0);
  });
});
