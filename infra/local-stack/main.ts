// Entry of `npm start` / `npm test` after bootstrap.mjs has installed dependencies and built:
// `node dist/infra/local-stack/main.js start|test`. The composition root of the local stack.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, type Config } from '../config.js';
import { runTests } from './run-tests.js';
import { startStack } from './start-stack.js';

/** The checkout: the nearest folder above this file that holds package.json (works from dist/ and from source). */
export function projectDir(): string {
  for (let d = dirname(fileURLToPath(import.meta.url)); ; d = dirname(d)) {
    if (existsSync(resolve(d, 'package.json'))) return d;
    if (d === dirname(d)) throw new Error('cannot find the project folder (no package.json above this file)');
  }
}

async function main(argv: string[]): Promise<number> {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const command = argv[0];
  if (command !== 'start' && command !== 'test') {
    process.stderr.write('usage: node dist/infra/local-stack/main.js start|test\n');
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write(`npm ${command} must run as root (it installs packages, creates service accounts and runs sshd); bootstrap.mjs explains why.\n`);
    return 1;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const opts = { projectDir: projectDir(), print };
  return command === 'start' ? startStack(config, opts) : runTests(config, opts);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Pools and gRPC channels of the provisioning steps are closed; anything else left open
    // (a stuck socket) must not keep the command from ending.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
