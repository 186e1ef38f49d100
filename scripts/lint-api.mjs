#!/usr/bin/env node
/**
 * `npm run lint:api`: `redocly lint openapi.yaml` with the rules of redocly.yaml
 * (which also turns telemetry off) and the reasoned exceptions of
 * .redocly.lint-ignore.yaml. Its output and exit code pass through unchanged
 * but for one thing: Redocly CLI 2.x prints a boxed "Node.js 20 support is
 * ending" notice on every run under Node 20, with no option or variable to
 * silence it (checked in 2.77.0's source), so that one box is dropped from
 * stderr. Any other output, including other notices, is kept.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const cliPackage = require.resolve('@redocly/cli/package.json');
const cli = join(dirname(cliPackage), require(cliPackage).bin.redocly);

/** Drop a box drawn with ╔…╚ whose text mentions Node.js 20's end of support. */
function dropNode20Notice(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.trimStart().startsWith('╔'));
  if (start < 0) return text;
  const end = lines.findIndex((line, i) => i > start && line.trimStart().startsWith('╚'));
  if (end < 0 || !lines.slice(start, end).some((line) => line.includes('Node.js 20 support is ending'))) {
    return text;
  }
  // The box comes with one blank line before it.
  const from = start > 0 && lines[start - 1]?.trim() === '' ? start - 1 : start;
  return [...lines.slice(0, from), ...lines.slice(end + 1)].join('\n');
}

const child = spawn(
  process.execPath,
  [cli, 'lint', 'openapi.yaml', '--format=stylish', ...process.argv.slice(2)],
  {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true' },
  },
);
let stderr = '';
child.stderr.setEncoding('utf8');
child.stderr.on('data', (chunk) => {
  stderr += chunk;
});
child.on('close', (code, signal) => {
  process.stderr.write(dropNode20Notice(stderr));
  process.exitCode = code ?? (signal ? 1 : 0);
});
