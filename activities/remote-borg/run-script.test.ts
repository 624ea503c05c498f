import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Client, Job } from '../../db/schema.js';
import type { Config } from '../../infra/config.js';
import { jobRepositoryUrl } from '../../infra/storage-layout.js';
import { borgCreateArgv } from './borg-create.js';
import { runScript, stopRunScript } from './run-script.js';

const config = { accounts: { proxy: 'borgcube-proxy' }, ssh: { host: 'backup.example', port: 2222 } } as Config;
const job = { id: '6c1f7a52-4f55-4d2b-9a54-0d4d2c1c9b1e', archiveName: 'web1-2026-11-27T17:00:00' } as Job;
const client = { compression: 'lz4', excludes: [], paths: ['/etc'] } as unknown as Client;
const argv = borgCreateArgv(jobRepositoryUrl(config, job.id), job, client, 'borg');

/** The BORG_RSH the script exports, as its shell computes it here. */
function exportedRsh(): string {
  const script = runScript({ jobId: job.id, dir: '/home/c/.borgcube/jobs/x', argv });
  const lines = script.split('\n');
  const at = lines.findIndex((l) => l.startsWith('export BORG_RSH='));
  expect(at).toBeGreaterThan(0);
  // everything up to the export, but the `cd` into the (here absent) job folder
  const head = lines.slice(0, at + 1).filter((l) => !l.startsWith('cd '));
  return execFileSync('sh', ['-c', `${head.join('\n')}\nprintf %s "$BORG_RSH"`], { encoding: 'utf8' });
}

/** Runs a run.sh whose "borg" is `command` in a scratch job folder; returns the folder. */
function runLocally(command: string[], cwd?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'run-script-'));
  writeFileSync(join(dir, 'run.sh'), runScript({ jobId: job.id, dir, argv: command, cwd }));
  execFileSync('sh', [join(dir, 'run.sh')]);
  return dir;
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

  it('passes no secret on a command line: borg reads them from the job folder', () => {
    const script = runScript({ jobId: job.id, dir: '/home/c/.borgcube/jobs/x', argv });
    expect(script).toContain("export BORG_KEY_FILE=/home/c/.borgcube/jobs/x/key");
    expect(script).toContain("export BORG_PASSCOMMAND='cat /home/c/.borgcube/jobs/x/passphrase'");
    expect(script).toMatch(/^unset BORG_PASSPHRASE /m);
    expect(script).toContain(`ssh://borgcube-proxy@backup.example:2222/${job.id}::${job.archiveName}`);
  });

  it("lets borg read an unencrypted repository it has not seen only for an authenticated job key (a restore's)", () => {
    const env = (authenticatedKey?: boolean) => runScript({ jobId: job.id, dir: '/x', argv, authenticatedKey }).split('\n').find((l) => l.includes('BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK'));
    expect(env()).toContain('BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no ');
    expect(env(true)).toContain('BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes ');
    // A relocated repository is refused either way.
    expect(env(true)).toContain('BORG_RELOCATED_REPO_ACCESS_IS_OK=no ');
  });

  it('records each pid with its start time, and the exit code once the command ended', () => {
    const dir = runLocally(['sh', '-c', 'echo out; echo err >&2; exit 3']);
    try {
      expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('3\n');
      expect(readFileSync(join(dir, 'borg.out'), 'utf8')).toBe('out\n');
      expect(readFileSync(join(dir, 'borg.log'), 'utf8')).toBe('err\n');
      // both processes are gone: no start time could be read any more, but the pid is there
      expect(readFileSync(join(dir, 'run.pid'), 'utf8')).toMatch(/^\d+ \d+\n$/);
      expect(readFileSync(join(dir, 'borg.pid'), 'utf8')).toMatch(/^\d+ \d*\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs borg in the given folder while its files stay in the job folder', () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'run-script-cwd-'));
    const dir = runLocally(['pwd'], elsewhere);
    try {
      expect(readFileSync(join(dir, 'borg.out'), 'utf8')).toBe(`${elsewhere}\n`);
      expect(readFileSync(join(dir, 'rc'), 'utf8')).toBe('0\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('stopRunScript', () => {
  it('stops a running command it started, and leaves a process that merely reuses its pid alone', () => {
    const dir = mkdtempSync(join(tmpdir(), 'run-script-stop-'));
    const sleeper = spawnSync('sh', ['-c', 'sleep 30 > /dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(sleeper.stdout.trim());
    try {
      const start = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
      // a start time that is not the process's: a pid reused by an unrelated process
      writeFileSync(join(dir, 'borg.pid'), `${pid} 1\n`);
      execFileSync('sh', ['-c', stopRunScript(dir)]);
      expect(() => process.kill(pid, 0)).not.toThrow();
      writeFileSync(join(dir, 'borg.pid'), `${pid} ${start}\n`);
      execFileSync('sh', ['-c', stopRunScript(dir)]);
      expect(isAlive(pid)).toBe(false);
    } finally {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Whether the process runs (a zombie waiting for its parent to reap it does not). */
function isAlive(pid: number): boolean {
  try {
    return !/^[ZX] /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!);
  } catch {
    return false;
  }
}
