import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Client, Job } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import { runScript } from './client.js';

const config = { accounts: { proxy: 'borgcube-proxy' }, ssh: { host: 'backup.example', port: 2222 } } as Config;
const job = { id: '6c1f7a52-4f55-4d2b-9a54-0d4d2c1c9b1e', archiveName: 'web1-2026-11-27T17:00:00' } as Job;
const client = { compression: 'lz4', excludes: [], paths: ['/etc'] } as unknown as Client;

/** The BORG_RSH the script exports, as its shell computes it here. */
function exportedRsh(): string {
  const script = runScript({ config, job, client, dir: '/home/c/.borgcube/jobs/x', borgCmd: 'borg' });
  const lines = script.split('\n');
  const at = lines.findIndex((l) => l.startsWith('export BORG_RSH='));
  expect(at).toBeGreaterThan(0);
  // everything up to the export, but the `cd` into the (here absent) job folder
  const head = lines.slice(0, at + 1).filter((l) => !l.startsWith('cd '));
  return execFileSync('sh', ['-c', `${head.join('\n')}\nprintf %s "$BORG_RSH"`], { encoding: 'utf8' });
}

describe('runScript', () => {
  it("prefers AES-GCM for the job's ssh when the CPU has AES instructions, chacha20-poly1305 otherwise", () => {
    const rsh = exportedRsh();
    const aes = /\baes\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));
    const ciphers = aes ? 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com' : 'chacha20-poly1305@openssh.com,aes128-gcm@openssh.com';
    expect(rsh).toMatch(new RegExp(`^ssh -F /dev/null .* -o Ciphers=${ciphers.replace(/\./g, '\\.')}$`));
    // the installed ssh takes the list as it is written (an unknown name would fail every backup)
    const cfg = execFileSync('ssh', ['-G', '-F', '/dev/null', '-o', `Ciphers=${ciphers}`, 'host.invalid'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(cfg).toContain(`ciphers ${ciphers}\n`);
  });
});
