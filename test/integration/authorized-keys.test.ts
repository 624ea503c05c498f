// Issue 21 point 8: BorgCube's sshd asks the repository service about offered keys through its
// AuthorizedKeysCommand. The key never shows on a command line (`ps` shows every account's argv),
// and unauthenticated attempts are rate-limited per source address: at most 24 unauthenticated
// connections per address at once (sshd's PerSourceMaxStartups), each refused key answered after
// 2 s — at most 4 refused keys per second per address. (A mere offer of a job's key not counting
// against the job is in proxy-adversarial-credentials.test.ts, which has running jobs.)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
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

  /**
   * A TCP connection from `source` that reads sshd's banner and then says nothing: sshd counts it
   * as unauthenticated until its LoginGraceTime, as it does a slow or hostile client.
   */
  function holdStartupSlot(port: number, source: string): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: '127.0.0.1', port, localAddress: source });
      sock.once('data', (d) => (d.toString('latin1').startsWith('SSH-') ? resolve(sock) : reject(new Error(`not an ssh banner: ${d.toString('latin1').slice(0, 40)}`))));
      sock.once('error', reject);
      sock.once('close', () => reject(new Error('sshd closed a connection before its banner')));
    });
  }

  it('rate-limits unauthenticated attempts per source address, and another address is not held back', async () => {
    const port = stack.sshd.port;
    // Holding the slots with silent connections makes the limit a fact, not a race between 40
    // starting ssh clients and sshd (how many overlap depended on the machine's load).
    const held = await Promise.all(Array.from({ length: 24 }, () => holdStartupSlot(port, '127.0.0.2')));
    try {
      const beyond = await Promise.all(Array.from({ length: 4 }, async (_, i) => attempt(port, (await newKey(`flood-${i}`)).path, '127.0.0.2')));
      const elsewhere = await attempt(port, (await newKey('other-address')).path, '127.0.0.1');
      process.stdout.write(
        `\n24 silent connections from 127.0.0.2; 4 more attempts from it: ${beyond.map((r) => (/Permission denied/.test(r.stderr) ? 'reached auth' : 'cut off')).join(', ')}; 127.0.0.1 meanwhile: refused after ${elsewhere.ms} ms\n`,
      );
      for (const r of beyond) expect(r.stderr, 'an attempt past PerSourceMaxStartups reached authentication').not.toMatch(/Permission denied/);
      // Another address still gets its answer, after 2 s (a refused key is never answered at once).
      expect(elsewhere.stderr).toMatch(/Permission denied \(publickey\)/);
      expect(elsewhere.ms).toBeGreaterThanOrEqual(1900);
    } finally {
      for (const s of held) s.destroy();
    }
    // The slots free again once those connections are gone: the address is not banned.
    await new Promise((r) => setTimeout(r, 500));
    const again = await attempt(port, (await newKey('after')).path, '127.0.0.2');
    expect(again.stderr).toMatch(/Permission denied \(publickey\)/);
    expect(again.ms).toBeGreaterThanOrEqual(1900);
  });
});
