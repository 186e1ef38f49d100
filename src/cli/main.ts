#!/usr/bin/env node
/**
 * The `aofq` command: `aofq server`, `aofq check-aof`, `aofq --version`.
 * Argument parsing is commander's; each subcommand lives in its own module.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { runCheckAof } from '../aof/check.js';
import { runServer } from './server.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('aofq')
  .description('aofq: a job-queue server with a Redis-compatible append-only file')
  .version(pkg.version, '-v, --version');

program
  .command('check-aof')
  .description('check (and with --fix, repair) an AOF manifest or file, as redis-check-aof does')
  .allowUnknownOption(true)
  .helpOption(false)
  .argument('[args...]')
  .action(async (args: string[]) => {
    const code = await runCheckAof(args, {
      stdout: (s) => process.stdout.write(s),
      stderr: (s) => process.stderr.write(s),
    });
    process.exitCode = code;
  });

program
  .command('server')
  .description('run a leader (default: ./data, 127.0.0.1:7700)')
  .allowUnknownOption(true)
  .helpOption(false)
  .argument('[args...]')
  .action(async (args: string[]) => {
    process.exitCode = await runServer(args);
  });

await program.parseAsync(process.argv);
