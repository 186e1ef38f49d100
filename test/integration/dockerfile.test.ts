/**
 * The Dockerfile without a Docker engine (none runs here). The test reads the
 * Dockerfile, checks what the image must be (two stages on an official Node.js
 * LTS slim image, `npm ci --omit=dev` in the final stage, a non-root numeric
 * USER, VOLUME /data, EXPOSE 7700, a HEALTHCHECK on /healthz, the command
 * `aofq server --dir /data --host 0.0.0.0`) and then runs it: every stage in a
 * directory of its own standing for the container's `/`, its COPY steps
 * copying from the build context (minus .dockerignore) or from the other
 * stage, its RUN steps' shell commands run as written, with ENV, in WORKDIR.
 * The stages run side by side as BuildKit would. Then the image's command
 * (ENTRYPOINT + CMD) starts as the image's USER when the test runs as root:
 * first as written, which aofq must refuse (0.0.0.0 without a token), then
 * with `--host 127.0.0.1 --resp-port 0` appended (a test binds loopback only
 * and never the default RESP port) and its port from AOFQ_PORT, which the
 * HEALTHCHECK command also reads. It must serve a real enqueue → lease → ack,
 * rewrite its AOF (the rewrite worker runs from dist/ with production
 * dependencies only), serve /docs, and pass the HEALTHCHECK command; once it
 * is stopped, the HEALTHCHECK must fail.
 *
 * What differs from a real build, and why: the commands run on this machine's
 * Node.js (the image's Node.js major may differ), the container's absolute
 * paths (its WORKDIR and VOLUME directories) are rebased into the stage's
 * directory, and npm uses a private copy of this machine's npm cache
 * (hard-linked content, copied index; `--prefer-offline` through
 * npm_config_prefer_offline) so that the two `npm ci` runs take seconds and
 * the final stage's `npm cache clean --force` cleans only that copy.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/server-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The uid:gid of the official node image's `node` user. */
const NODE_USER = { uid: 1000, gid: 1000 };
const STEP_TIMEOUT_MS = 150_000;
const READY_TIMEOUT_MS = 20_000;

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly name: string | null;
  readonly image: string;
  readonly instructions: Instruction[];
}

/** Dockerfile syntax: instructions, `\` continuations, `#` comments (and parser directives). */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = i + 1;
    let line = lines[i] as string;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.trimEnd().endsWith('\\') && i + 1 < lines.length) {
      line = `${line.trimEnd().slice(0, -1)} `;
      i++;
      const next = lines[i] as string;
      if (!/^\s*#/.test(next)) line += next.trim();
    }
    const match = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (match === null) throw new Error(`Dockerfile:${first}: cannot parse '${line}'`);
    const keyword = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim();
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (from === null) throw new Error(`Dockerfile:${first}: FROM ${args}`);
      stages.push({ image: from[1] as string, name: from[2] ?? null, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (stage === undefined) throw new Error(`Dockerfile:${first}: ${keyword} before FROM`);
      stage.instructions.push({ keyword, args, line: first });
    }
  }
  return stages;
}

/** Exec form (a JSON array) or shell form (`sh -c`), as Docker reads CMD, ENTRYPOINT and RUN. */
function commandOf(args: string): string[] {
  if (args.startsWith('[')) return JSON.parse(args) as string[];
  return ['/bin/sh', '-c', args];
}

function only(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** `HEALTHCHECK [--option=value ...] CMD <command>`. */
function healthcheckOf(stage: Stage): { options: Record<string, string>; command: string[] } {
  const [instruction] = only(stage, 'HEALTHCHECK');
  if (instruction === undefined) throw new Error('no HEALTHCHECK');
  const match = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$/s.exec(instruction.args);
  if (match === null) throw new Error(`HEALTHCHECK ${instruction.args}`);
  const options = Object.fromEntries(
    [...(match[1] as string).matchAll(/--([a-z-]+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string]),
  );
  return { options, command: commandOf(match[2] as string) };
}

/** .dockerignore patterns: `name`, `dir/sub`, `*.ext`, `prefix*`; a match excludes the path and what is under it. */
function dockerIgnore(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((p) => {
      if (p.startsWith('!')) throw new Error(`.dockerignore: exceptions (${p}) are not handled here`);
      const body = p
        .replace(/^\.?\//, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0000/g, '.*');
      return new RegExp(`^${body}(/.*)?$`);
    });
  return (path) => {
    // Docker matches from the context root; a bare `*.log` also matches at any depth only with `**/`,
    // but be strict: test every suffix so a nested secret is excluded too.
    const parts = path.split('/');
    return parts.some((_, i) => patterns.some((re) => re.test(parts.slice(i).join('/'))));
  };
}

// biome-ignore lint/suspicious/noExplicitAny: replies are checked field by field
type Json = any;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  command: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; uid?: number; gid?: number; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      if (stdout.length < 1 << 20) stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < 1 << 20) stderr += s;
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${command.join(' ')} did not finish in ${options.timeoutMs ?? STEP_TIMEOUT_MS} ms`));
    }, options.timeoutMs ?? STEP_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const dockerfileText = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfileText);
const final = stages.at(-1) as Stage;
const packageJson = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  bin: { aofq: string };
};

const work = await mkdtemp(join(tmpdir(), 'aofq-docker-'));
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
    }
  }
  await rm(work, { recursive: true, force: true });
});

describe('Dockerfile', () => {
  it('is what the image must be', async () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) {
      // node:<even major>-<debian release>-slim: an official Node.js LTS line, slim variant.
      const image = /^node:(\d+)(?:\.\d+)*-(?:bookworm|trixie)-slim$/.exec(stage.image);
      expect(image, stage.image).not.toBeNull();
      const major = Number(image?.[1]);
      expect(major % 2, `${stage.image}: LTS lines are even`).toBe(0);
      expect(major, `${stage.image}: Node.js 20 left LTS in April 2026`).toBeGreaterThanOrEqual(22);
    }
    const runs = only(final, 'RUN').map((i) => i.args);
    expect(runs.some((r) => /\bnpm ci\b[^&|;]*--omit=dev/.test(r))).toBe(true);
    expect(
      runs.some((r) => /\bnpm ci\b(?![^&|;]*--omit=dev)/.test(r)),
      'dev dependencies in the final stage',
    ).toBe(false);
    expect(only(final, 'COPY').some((i) => i.args.startsWith('--from='))).toBe(true);
    const user = only(final, 'USER').at(-1)?.args ?? 'root';
    expect(user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
    expect(only(final, 'VOLUME').map((i) => i.args)).toEqual(['/data']);
    expect(only(final, 'EXPOSE').map((i) => i.args)).toEqual(['7700']);
    const health = healthcheckOf(final);
    expect(health.command.join(' ')).toMatch(/\/healthz/);
    expect(Object.keys(health.options)).toEqual(expect.arrayContaining(['interval', 'timeout', 'retries']));
    // ENTRYPOINT + CMD is `aofq server --dir /data --host 0.0.0.0`: node on the package's `aofq` bin.
    const entrypoint = commandOf(only(final, 'ENTRYPOINT').at(-1)?.args ?? '[]');
    const cmd = commandOf(only(final, 'CMD').at(-1)?.args ?? '[]');
    expect(entrypoint).toEqual(['node', `/app/${packageJson.bin.aofq}`]);
    expect(cmd).toEqual(['server', '--dir', '/data', '--host', '0.0.0.0']);
    expect(only(final, 'WORKDIR').at(-1)?.args).toBe('/app');
  });

  it('has a .dockerignore that keeps the context small and secrets out, and lets every COPY through', async () => {
    const ignored = dockerIgnore(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
    for (const path of [
      'node_modules',
      'dist',
      'data',
      '.git',
      'data/appendonlydir/x',
      '.env',
      'tls/server.key',
    ]) {
      expect(ignored(path), path).toBe(true);
    }
    for (const stage of stages) {
      for (const copy of only(stage, 'COPY')) {
        if (copy.args.startsWith('--from=')) continue;
        const sources = copy.args.split(/\s+/).slice(0, -1);
        for (const source of sources) {
          expect(ignored(source.replace(/^\.\//, '')), `COPY ${source}`).toBe(false);
          await expect(stat(join(ROOT, source)), `COPY ${source}`).resolves.toBeDefined();
        }
      }
    }
  });

  it(
    'builds by running its RUN steps, and its command serves, rewrites and passes its HEALTHCHECK',
    async () => {
      const started = performance.now();
      const ignored = dockerIgnore(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
      // The container paths (WORKDIR and VOLUME directories) that commands name; rebased into a stage root.
      const containerDirs = [
        ...new Set(
          stages.flatMap((s) =>
            [...only(s, 'WORKDIR'), ...only(s, 'VOLUME')].map((i) => i.args.split('/')[1] ?? ''),
          ),
        ),
      ].filter((d) => d !== '');
      const rebase = (root: string, text: string): string =>
        text.replace(
          new RegExp(`(^|[\\s"'=])/(${containerDirs.join('|')})(?=$|[\\s"'/])`, 'g'),
          (_m, before: string, dir: string) => `${before}${root}/${dir}`,
        );
      const asRoot = process.getuid?.() === 0;

      /** A private npm cache per stage: content hard-linked (cacache never rewrites it), index copied. */
      const npmCache = async (stageRoot: string): Promise<string> => {
        const cache = join(stageRoot, '.npm-cache');
        const host = join(homedir(), '.npm', '_cacache');
        await mkdir(join(cache, '_cacache'), { recursive: true });
        const hasHostCache = await stat(host).then(
          () => true,
          () => false,
        );
        if (hasHostCache) {
          const linked = await run(
            ['cp', '-al', join(host, 'content-v2'), join(cache, '_cacache', 'content-v2')],
            {
              cwd: stageRoot,
              env: process.env,
            },
          );
          if (linked.code !== 0)
            await cp(join(host, 'content-v2'), join(cache, '_cacache', 'content-v2'), { recursive: true });
          await cp(join(host, 'index-v5'), join(cache, '_cacache', 'index-v5'), { recursive: true });
        }
        return cache;
      };

      const roots = new Map<string, string>();
      const done = new Map<string, Promise<void>>();
      const timings: string[] = [];
      const buildStage = async (stage: Stage, index: number): Promise<void> => {
        const key = stage.name ?? String(index);
        const root = join(work, `stage-${key}`);
        roots.set(key, root);
        await mkdir(join(root, 'root'), { recursive: true });
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH,
          HOME: join(root, 'root'),
          npm_config_cache: await npmCache(root),
          npm_config_prefer_offline: 'true',
          npm_config_update_notifier: 'false',
        };
        let cwd = root;
        for (const instruction of stage.instructions) {
          const { keyword, args } = instruction;
          const where = `Dockerfile:${instruction.line} ${keyword} ${args}`;
          if (keyword === 'WORKDIR') {
            cwd = join(root, args);
            await mkdir(cwd, { recursive: true });
          } else if (keyword === 'ENV') {
            for (const m of args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
              env[m[1] as string] = (m[2] as string).replace(/^"|"$/g, '');
            }
          } else if (keyword === 'COPY') {
            const words = args.split(/\s+/);
            const from = words[0]?.startsWith('--from=') ? (words.shift() as string).slice(7) : null;
            const dest = words.pop() as string;
            const target = dest.startsWith('/') ? join(root, dest) : join(cwd, dest);
            for (const source of words) {
              let base = ROOT;
              if (from !== null) {
                await done.get(from);
                base = roots.get(from) as string;
              }
              const src = join(base, source);
              const into = dest.endsWith('/') ? join(target, source.split('/').at(-1) as string) : target;
              await mkdir(dirname(into), { recursive: true });
              await cp(src, into, {
                recursive: true,
                filter: (path) => from !== null || !ignored(relative(ROOT, path)),
              });
            }
          } else if (keyword === 'RUN') {
            const t = performance.now();
            const result = await run(commandOf(rebase(root, args)), { cwd, env });
            expect(
              result.code,
              `${where}\n${result.stdout.slice(-2000)}\n${result.stderr.slice(-4000)}`,
            ).toBe(0);
            timings.push(`${key}: ${args.slice(0, 40)} ${((performance.now() - t) / 1000).toFixed(1)} s`);
          } else if (
            !['USER', 'VOLUME', 'EXPOSE', 'HEALTHCHECK', 'CMD', 'ENTRYPOINT', 'LABEL', 'ARG'].includes(
              keyword,
            )
          ) {
            throw new Error(`${where}: not handled by this test`);
          }
        }
      };
      await Promise.all(
        stages.map((stage, index) => {
          const promise = buildStage(stage, index);
          done.set(stage.name ?? String(index), promise);
          return promise;
        }),
      );
      const root = roots.get(String(stages.length - 1)) as string;
      const app = join(root, 'app');
      const data = join(root, 'data');
      await expect(stat(join(app, packageJson.bin.aofq))).resolves.toBeDefined();
      // Only production dependencies in the final stage.
      const modules = await readdir(join(app, 'node_modules'));
      for (const dev of ['typescript', 'vitest', '@biomejs', 'tsx', '@redocly'])
        expect(modules).not.toContain(dev);
      const dataOwner = await stat(data);
      if (asRoot) expect([dataOwner.uid, dataOwner.gid]).toEqual([NODE_USER.uid, NODE_USER.gid]);

      // The image's command and environment, as its USER when we can switch to it.
      const command = [
        ...commandOf(only(final, 'ENTRYPOINT').at(-1)?.args ?? '[]'),
        ...commandOf(only(final, 'CMD').at(-1)?.args ?? '[]'),
      ].map((word) => rebase(root, word));
      command[0] = command[0] === 'node' ? process.execPath : (command[0] as string);
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_ENV: 'production' };
      if (asRoot) {
        // The image's user must be able to reach the rebased `/`.
        for (let dir = root; dir !== dirname(dir) && dir.startsWith(work); dir = dirname(dir)) {
          await run(['chmod', 'a+rx', dir], { cwd: work, env: process.env });
        }
      }
      const as = asRoot ? NODE_USER : {};

      // As written: 0.0.0.0 without a token is refused before anything listens (port 0 even so).
      const refused = await run([...command, '--port', '0', '--resp-port', '0'], {
        cwd: app,
        env,
        ...as,
        timeoutMs: 20_000,
      });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/not a loopback address and no token is configured/);

      // On loopback, with the port from AOFQ_PORT (which the HEALTHCHECK reads too).
      const port = await freePort();
      const serverEnv = { ...env, AOFQ_PORT: String(port), AOFQ_LOGLEVEL: 'warning' };
      const server = spawn(
        command[0] as string,
        [...command.slice(1), '--host', '127.0.0.1', '--resp-port', '0'],
        {
          cwd: app,
          env: serverEnv,
          stdio: ['ignore', 'pipe', 'pipe'],
          ...as,
        },
      );
      children.push(server);
      let serverOutput = '';
      server.stdout.setEncoding('utf8').on('data', (s: string) => {
        serverOutput += s;
      });
      server.stderr.setEncoding('utf8').on('data', (s: string) => {
        serverOutput += s;
      });
      const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
      const url = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + READY_TIMEOUT_MS;
      for (;;) {
        if (server.exitCode !== null)
          throw new Error(`the image's command exited ${server.exitCode}:\n${serverOutput}`);
        const ready = await fetch(`${url}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ready) break;
        if (Date.now() > deadline) throw new Error(`not ready in ${READY_TIMEOUT_MS} ms:\n${serverOutput}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }

      const health = healthcheckOf(final);
      const healthcheck = (): Promise<RunResult> =>
        run(
          health.command.map((word, i) => (i === 0 && word === 'node' ? process.execPath : word)),
          { cwd: app, env: serverEnv, ...as, timeoutMs: 10_000 },
        );
      const healthy = await healthcheck();
      expect(healthy.code, healthy.stderr).toBe(0);

      const call = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${url}${path}`, {
          method,
          ...(body === undefined
            ? {}
            : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
        });
        return { status: response.status, body: (await response.json()) as Json };
      };
      const added = await call('POST', '/v1/queues/docker/jobs', { name: 'from-the-image', data: { ok: 1 } });
      expect(added.status).toBe(201);
      const lease = await call('POST', '/v1/queues/docker/leases', { count: 1 });
      expect(lease.body.jobs[0].id).toBe(added.body.id);
      const ack = await call('POST', `/v1/queues/docker/jobs/${added.body.id}/ack`, {
        token: lease.body.jobs[0].token,
      });
      expect(ack.body).toEqual({ id: added.body.id, state: 'completed' });
      // A rewrite runs its worker from dist/ with production dependencies only (no tsx).
      expect((await call('POST', '/v1/admin/rewrite')).status).toBe(202);
      const rewriteDeadline = Date.now() + 15_000;
      let rewrites = 0;
      while (rewrites < 1 && Date.now() < rewriteDeadline) {
        const info = await call('GET', '/v1/admin/info?section=persistence');
        rewrites = Number(info.body.persistence.aof_rewrites);
        if (rewrites < 1) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(rewrites, serverOutput).toBe(1);
      expect((await fetch(`${url}/docs/`)).status).toBe(200);
      expect((await stat(join(data, 'appendonlydir', 'appendonly.aof.manifest'))).isFile()).toBe(true);

      process.kill(server.pid as number, 'SIGTERM');
      expect(await exited, serverOutput).toBe(0);
      // With the server gone the HEALTHCHECK fails.
      expect((await healthcheck()).code).toBe(1);
      process.stdout.write(
        `dockerfile: built and served in ${((performance.now() - started) / 1000).toFixed(1)} s (${timings.join('; ')})\n`,
      );
    },
    STEP_TIMEOUT_MS + 60_000,
  );
});
