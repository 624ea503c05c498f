// Issue 21 point 8: BorgCube's sshd asks the repository service about offered keys through its
// AuthorizedKeysCommand. The key never shows on a command line (`ps` shows every account's argv),
// and unauthenticated attempts are rate-limited per source address: at most 8 unauthenticated
// connections per address at once (sshd's PerSourceMaxStartups), each refused key answered after
// 2 s — at most 4 refused keys per second per address. (A mere offer of a job's key not counting
// against the job is in proxy-adversarial-credentials.test.ts, which has running jobs.)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecked } from '../../infra/subprocess.js';
import { runCleanups } from '../harness/cleanup.js';
import { startBorgcubeSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

interface Attempt {
  code: number | null;
  stderr: string;
  ms: number;
}

describe("BorgCube sshd's AuthorizedKeysCommand", () => {
  let stack: TestStack;
  let keysDir: string;

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    keysDir = mkdtempSync(join(tmpdir(), 'borgcube-test-ak-keys-'));
  });
  afterAll(async () => {
    rmSync(keysDir, { recursive: true, force: true });
    await runCleanups();
  });

  async function newKey(name: string): Promise<{ path: string; publicKey: string }> {
    const path = join(keysDir, name);
    await runChecked('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
    return { path, publicKey: readFileSync(`${path}.pub`, 'utf8').trim() };
  }

  /** One login attempt with one key, from a given local source address. */
  function attempt(port: number, key: string, source: string): Promise<Attempt> {
    const t0 = Date.now();
    const args = ['-F', '/dev/null', '-i', key, '-b', source, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none', '-o', 'BatchMode=yes'];
    args.push('-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=30', '-p', String(port), `${stack.config.accounts.proxy}@127.0.0.1`, 'true');
    return new Promise((resolve) => {
      const p = spawn('ssh', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      p.on('close', (code) => resolve({ code, stderr, ms: Date.now() - t0 }));
    });
  }

  it('gets the fingerprint of the offered key, never the key itself, on its command line', async () => {
    // DEBUG3 makes sshd log each AuthorizedKeysCommand line as it runs it, expanded.
    const sshd = await startBorgcubeSshd({ storageSocket: stack.config.paths.storageSocket, logLevel: 'DEBUG3' });
    const key = await newKey('ps-probe');
    const r = await attempt(sshd.port, key.path, '127.0.0.1');
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
    const fingerprint = (await runChecked('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key.path}.pub`])).stdout.toString().split(' ')[1]!;
    const commandLines = sshd.log.split('\n').filter((l) => l.includes('authorized-keys.js'));
    expect(commandLines.length, sshd.log.slice(-3000)).toBeGreaterThan(0);
    const b64 = key.publicKey.split(' ')[1]!;
    for (const l of commandLines) expect(l).not.toContain(b64);
    expect(commandLines.some((l) => l.includes(fingerprint))).toBe(true);
    await sshd.stop();
  });

  it('rate-limits unauthenticated attempts per source address, and another address is not held back', async () => {
    const keys = await Promise.all(Array.from({ length: 16 }, (_, i) => newKey(`flood-${i}`)));
    const other = await newKey('other-address');
    const port = stack.sshd.port;
    const flood = keys.map((k) => attempt(port, k.path, '127.0.0.2'));
    // Once the flood holds its address's slots, a client at another address still gets its answer.
    await new Promise((r) => setTimeout(r, 500));
    const elsewhere = await attempt(port, other.path, '127.0.0.1');
    const results = await Promise.all(flood);
    const reachedAuth = results.filter((r) => /Permission denied \(publickey\)/.test(r.stderr));
    const cutOff = results.filter((r) => !/Permission denied/.test(r.stderr));
    process.stdout.write(
      `\n16 simultaneous unknown keys from 127.0.0.2: ${reachedAuth.length} reached the AuthorizedKeysCommand (refused after ${reachedAuth.map((r) => r.ms).join(', ')} ms), ${cutOff.length} cut off by sshd; 127.0.0.1 meanwhile: refused after ${elsewhere.ms} ms\n`,
    );
    expect(reachedAuth.length).toBeGreaterThan(0);
    expect(reachedAuth.length).toBeLessThanOrEqual(8);
    expect(cutOff.length).toBeGreaterThanOrEqual(8);
    // A refused key is answered after 2 s, never at once.
    for (const r of reachedAuth) expect(r.ms).toBeGreaterThanOrEqual(1900);
    expect(elsewhere.stderr).toMatch(/Permission denied \(publickey\)/);
  });
});
