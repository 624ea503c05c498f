import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './net.js';
import { launchDevServer } from './temporal-server.js';

const dir = mkdtempSync(join(tmpdir(), 'temporal-launch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for the Temporal CLI that counts its starts, prints `line` and exits 1. */
function fakeCli(name: string, line: string): { cli: string; starts: () => number } {
  const cli = join(dir, name);
  const count = join(dir, `${name}.starts`);
  writeFileSync(cli, `#!/bin/sh\necho start >> '${count}'\necho '${line}'\nexit 1\n`);
  chmodSync(cli, 0o755);
  return { cli, starts: () => readFileSync(count, 'utf8').split('\n').filter(Boolean).length };
}

describe('launchDevServer', () => {
  it('starts the dev server again when it lost a race for a port, up to three times', async () => {
    const fake = fakeCli('busy', 'failed listening for HTTP API on 127.0.0.1:45205: listen tcp 127.0.0.1:45205: bind: address already in use');
    const logFile = join(dir, 'busy.log');
    await expect(launchDevServer(fake.cli, { address: `127.0.0.1:${await freePort()}`, namespace: 'default', headless: true, logFile })).rejects.toThrow(/exited with 1 before answering/);
    expect(fake.starts()).toBe(3);
  });
  it('does not start it again for any other failure', async () => {
    const fake = fakeCli('broken', 'unknown flag: --bogus');
    const logFile = join(dir, 'broken.log');
    // an earlier run's port race in the same log file does not count
    writeFileSync(logFile, 'bind: address already in use\n');
    await expect(launchDevServer(fake.cli, { address: `127.0.0.1:${await freePort()}`, namespace: 'default', headless: true, logFile })).rejects.toThrow(/exited with 1 before answering/);
    expect(fake.starts()).toBe(1);
  });
});
