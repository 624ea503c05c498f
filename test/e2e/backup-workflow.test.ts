// Issue 4 acceptance, end to end on the harness (real sshd client hosts, Temporal, PostgreSQL,
// Redis, borg): success with stats and a bit-identical restore, a nearly free second backup,
// cancellation, a worker SIGKILLed mid-backup, an unreachable client, a client without borg,
// live log following, and — after every job — nothing left in the client's home and a
// credential that no longer opens the proxy.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/subprocess.js';
import { findClientByName, updateClient } from '../../db/queries/clients.js';
import { addClient } from '../../services/clients.js';
import { cancelJob, getJob, startBackup } from '../../services/jobs.js';
import { startCheck } from '../../services/policy-jobs.js';
import { runAdminBorg } from '../../services/repositories.js';
import { backup, borgCheck, describeJob, expectSameTree, extract, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { peakRss, waitUntil } from '../harness/process.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { stealCredential } from '../harness/stolen-credential.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { projectRoot } from '../harness/paths.js';

const bigTree = {
  'data/big1.bin': { type: 'file' as const, size: 300 * 1024 * 1024, seed: 'big1' },
  'data/big2.bin': { type: 'file' as const, size: 300 * 1024 * 1024, seed: 'big2' },
  'data/notes.txt': 'notes\n'.repeat(1000),
};

describe('the backup workflow', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let small: ClientHost;
  let big: ClientHost;
  let repoCount = 0;

  /** Each test its own repository: a failure in one does not leak into the next. */
  async function newRepo(): Promise<string> {
    const name = `r${++repoCount}`;
    const r = await stack.cli(['repo', 'add', name, '--path', `${stack.dataDir}-repos/${name}`]);
    expect(r.code, r.err).toBe(0);
    return name;
  }

  /**
   * Until the job's proxy session holds the repository: the repository service logs the attach.
   * (Its client's borg.pid alone was not enough: on a loaded machine borg can take seconds from
   * start to open, and a lease asked for meanwhile was granted at once.)
   */
  async function untilSessionAttached(jobId: string) {
    const log = join(stack.config.paths.logDir, 'storage.log');
    const attached = (line: string) => line.includes(`"job":"${jobId}"`) && line.includes('proxy session attached');
    await waitUntil(() => Promise.resolve(existsSync(log) && readFileSync(log, 'utf8').split('\n').some(attached)), 120_000);
  }

  /** After any job: no job folder on the client, and the stolen credential opens nothing. */
  async function expectJobGone(host: ClientHost, jobId: string, credential?: string) {
    expect(existsSync(host.path('.borgcube', 'jobs', jobId)), 'job folder left on the client').toBe(false);
    if (existsSync(host.path('.borgcube', 'jobs'))) expect(readdirSync(host.path('.borgcube', 'jobs'))).toEqual([]);
    if (credential && existsSync(credential)) {
      const r = await run('ssh', ['-F', '/dev/null', '-i', credential, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-p', String(stack.sshd.port), `${stack.config.accounts.proxy}@127.0.0.1`, 'borg', 'serve'], { timeoutMs: 30_000, input: '' });
      // sshd lets a kept credential in only for a forced command that reports its reuse and ends.
      expect(r.code, 'the credential still opens the proxy').not.toBe(0);
      expect(r.stderr.toString()).toMatch(/no longer valid/);
    }
  }

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    small = await createClientHost({
      authorizedKeys: [stack.serverPublicKey],
      tree: {
        'data/a.txt': 'alpha\n',
        'data/dir/b.bin': { type: 'file', size: 2 * 1024 * 1024, seed: 'b', mode: 0o640, mtime: new Date('2022-03-04T05:06:07Z') },
        'data/dir/link': { type: 'symlink', target: '../a.txt' },
        'data/exec': { type: 'file', content: '#!/bin/sh\n', mode: 0o750 },
      },
    });
    big = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: bigTree });
    await addClient(stack.deps, { name: 'small', host: sshd.host, port: sshd.port, user: small.username, paths: [small.path('data')] });
    await addClient(stack.deps, { name: 'big', host: sshd.host, port: sshd.port, user: big.username, paths: [big.path('data')] });
  });
  afterAll(runCleanups);

  it('succeeds with stats, restores bit for bit, and a second backup uploads almost nothing', async () => {
    const repo = await newRepo();
    const first = await startBackup(stack.deps, { client: 'small', repository: repo });
    const cred = stealCredential(small, first.id, stack.dataDir);
    const done = await waitForJob(stack, first.id);
    cred.stop();
    expect(done.state, await describeJob(stack, done.id)).toBe('succeeded');
    expect(done.stats).toMatchObject({ nfiles: 3 });
    expect(Number(done.stats?.originalSize)).toBeGreaterThan(2 * 1024 * 1024);
    const out = await extract(stack, repo, done.archiveName!);
    expectSameTree(small.path('data'), `${out}${small.path('data')}`);
    await expectJobGone(small, first.id, cred.path);

    const second = await backup(stack, 'small', repo);
    expect(Number(second.stats?.uploadedBytes)).toBeLessThan(Number(done.stats?.uploadedBytes) * 0.02);
    // The files cache came back from the first job and went out with the second, so borg did
    // not even read the unchanged files (a rechunked file would upload nothing either).
    expect(await describeJob(stack, done.id)).toMatch(/its files cache has 0 entries/);
    expect(await describeJob(stack, second.id)).toMatch(/its files cache has [1-9]\d* entries/);
    await expectJobGone(small, second.id);
    await borgCheck(stack, repo);
  });

  it("counts a backup as contact with the client: its last-seen time and borg version", async () => {
    const repo = await newRepo();
    const before = (await findClientByName(stack.deps.db, 'small'))!;
    await updateClient(stack.deps.db, before.id, { lastSeenAt: null, borgVersion: null });
    const startedAt = new Date();
    const done = await backup(stack, 'small', repo);
    expect(done.state).toBe('succeeded');
    const after = (await findClientByName(stack.deps.db, 'small'))!;
    expect(after.lastSeenAt?.getTime()).toBeGreaterThanOrEqual(startedAt.getTime() - 1000);
    expect(after.borgVersion).toMatch(/^1\.2\./);
  });

  it('follows the log live with `borgcube job logs --follow`', async () => {
    const repo = await newRepo();
    const job = await startBackup(stack.deps, { client: 'big', repository: repo });
    const child = spawn(process.execPath, [join(projectRoot, 'bin/borgcube'), 'job', 'logs', job.id, '--follow'], { env: stack.env, stdio: ['ignore', 'pipe', 'pipe'] });
    registerCleanup('job logs --follow', () => void child.kill());
    const lines: Array<{ at: number; line: string }> = [];
    child.stdout.on('data', (c: Buffer) => {
      for (const line of c.toString().split('\n').filter(Boolean)) lines.push({ at: Date.now(), line });
    });
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    const done = await waitForJob(stack, job.id);
    const endedAt = Date.now();
    expect(done.state, await describeJob(stack, done.id)).toBe('succeeded');
    expect(await exited).toBe(0);
    // Lines arrived while the job was still running, and the follower ended with the job.
    expect(lines.filter((l) => l.at < endedAt - 1000).length, JSON.stringify(lines.map((l) => [l.at - endedAt, l.line.slice(0, 80)]))).toBeGreaterThan(0);
    expect(lines.some((l) => /borg create started/.test(l.line))).toBe(true);
    // Progress too, as `job show` words it: files, bytes read, new bytes, the current path.
    expect(lines.some((l) => /^\S+ PROGRESS \d+ files, \d+ bytes read, \d+ new; at /.test(l.line))).toBe(true);
    expect(lines.at(-1)?.line).toMatch(/^job succeeded/);
  });

  it('cancels mid-run: the remote borg stops, cleanup runs, state cancelled', async () => {
    const repo = await newRepo();
    const job = await startBackup(stack.deps, { client: 'big', repository: repo });
    const cred = stealCredential(big, job.id, stack.dataDir);
    await waitUntil(async () => (await getJob(stack.deps, job.id)).phase === 'run' && existsSync(big.path('.borgcube', 'jobs', job.id, 'borg.pid')), 120_000);
    await new Promise((r) => setTimeout(r, 1500));
    await cancelJob(stack.deps, job.id);
    const done = await waitForJob(stack, job.id);
    cred.stop();
    expect(done.state, await describeJob(stack, job.id)).toBe('cancelled');
    await expectJobGone(big, job.id, cred.path);
    // No borg of that job is left running on the client. A killed borg may linger as a zombie
    // until PID 1 reaps it; a zombie runs nothing, so only live states count.
    const ps = await run('pgrep', ['--runstates', 'D,R,S,T,t', '-u', String(big.uid), '-f', 'borg']);
    expect(ps.stdout.toString().trim()).toBe('');
    await borgCheck(stack, repo);
  });

  it('survives a worker killed with SIGKILL mid-backup', async () => {
    const repo = await newRepo();
    const job = await startBackup(stack.deps, { client: 'big', repository: repo });
    await waitUntil(async () => (await getJob(stack.deps, job.id)).phase === 'run' && existsSync(big.path('.borgcube', 'jobs', job.id, 'borg.log')), 120_000);
    await new Promise((r) => setTimeout(r, 1000));
    await stack.worker.kill();
    await new Promise((r) => setTimeout(r, 2000));
    await stack.worker.start();
    const done = await waitForJob(stack, job.id, 300_000);
    expect(done.state, await describeJob(stack, job.id)).toBe('succeeded');
    const out = await extract(stack, repo, done.archiveName!);
    expectSameTree(big.path('data'), `${out}${big.path('data')}`);
    rmSync(out, { recursive: true, force: true });
    await borgCheck(stack, repo);
    await expectJobGone(big, job.id);
  });

  it('fails after retries with a clear error when the client is unreachable', async () => {
    const repo = await newRepo();
    await addClient(stack.deps, { name: 'gone', host: '127.0.0.1', port: 1, user: 'nobody', paths: ['/srv'] });
    const done = await backup(stack, 'gone', repo, 'failed');
    expect(done.error).toMatch(/cannot reach nobody@127\.0\.0\.1:1: ECONNREFUSED/);
    expect(done.error).toMatch(/gave up after 6 attempts/);
  });

  it('keeps the worker bounded when a client floods its output', async () => {
    const repo = await newRepo();
    // A "borg" that writes 64 MiB without a newline, then thousands of 20 kB lines, and fails.
    small.writeTree({
      'flood-borg': {
        type: 'file',
        mode: 0o755,
        content: [
          '#!/bin/sh',
          'if [ "$1" = "--version" ]; then echo "borg 1.2.4"; exit 0; fi',
          "head -c 67108864 /dev/zero | tr '\\0' 'A' >&2",
          "line=$(head -c 20000 /dev/zero | tr '\\0' '<')",
          'i=0; while [ $i -lt 3000 ]; do echo "$line" >&2; i=$((i+1)); done',
          'echo \'{"type": "log_message", "levelname": "ERROR", "name": "x", "message": "<script>alert(1)</script> flood over"}\' >&2',
          'exit 2',
          '',
        ].join('\n'),
      },
    });
    await addClient(stack.deps, { name: 'flood', host: sshd.host, port: sshd.port, user: small.username, paths: [small.path('data')], borgPath: small.path('flood-borg') });
    const job = await backup(stack, 'flood', repo, 'failed');
    expect(job.error).toBe('<script>alert(1)</script> flood over');
    const logs = await describeJob(stack, job.id);
    expect(logs).toMatch(/\[line truncated\]/);
    // The worker read ~130 MB of client output in bounded pieces.
    expect(peakRss(stack.worker.pid!)).toBeLessThan(600 * 1024 * 1024);
    await expectJobGone(small, job.id);
  });

  it("asks the client's borg for its version again only when the file changed", async () => {
    const repo = await newRepo();
    const calls = small.path('version-calls');
    // A wrapper around the real borg that counts `--version` calls.
    const wrapper = (version: string) =>
      ['#!/bin/sh', `if [ "$1" = "--version" ]; then echo x >> ${calls}; echo "borg ${version}"; exit 0; fi`, 'exec borg "$@"', ''].join('\n');
    small.writeTree({ 'counting-borg': { type: 'file', mode: 0o755, content: wrapper('1.2.4') } });
    await addClient(stack.deps, { name: 'counted', host: sshd.host, port: sshd.port, user: small.username, paths: [small.path('data')], borgPath: small.path('counting-borg') });
    await backup(stack, 'counted', repo);
    await backup(stack, 'counted', repo);
    expect(readFileSync(calls, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
    // Upgraded (here: replaced by an unsupported version): asked again, and refused.
    small.writeTree({ 'counting-borg': { type: 'file', mode: 0o755, content: wrapper('1.1.18') } });
    const job = await backup(stack, 'counted', repo, 'failed');
    expect(job.error).toMatch(/borg 1\.1\.18 at \S+ on the client is not supported/);
    expect(readFileSync(calls, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
    await expectJobGone(small, job.id);
  });

  it('deploys its own borg to a client that has none, and removes it afterwards', async () => {
    const repo = await newRepo();
    await addClient(stack.deps, { name: 'noborg', host: sshd.host, port: sshd.port, user: small.username, paths: [small.path('data')], borgPath: '/opt/no-such-borg/borg' });
    const job = await backup(stack, 'noborg', repo);
    const logs = await describeJob(stack, job.id);
    expect(logs).toMatch(/deployed borg 1\.2\.4/);
    await expectJobGone(small, job.id);
    const out = await extract(stack, repo, job.archiveName!);
    expectSameTree(small.path('data'), `${out}${small.path('data')}`);
  });

  it('an admin command that gives up waiting for the repository does not hold back new jobs', async () => {
    const repo = await newRepo();
    // The big tree with lzma runs for a long while, so it is surely still running after the
    // small job (with the default compression it sometimes finished first on a quiet machine).
    await addClient(stack.deps, { name: 'slow-admin', host: sshd.host, port: sshd.port, user: big.username, paths: [big.path('data')], compression: 'lzma,6' });
    const first = await startBackup(stack.deps, { client: 'slow-admin', repository: repo });
    await untilSessionAttached(first.id);
    // `borgcube borg REPO -- …` (or the console's live archive list) waits for running jobs; this
    // one gives up after a second, like a user pressing Ctrl-C or a request timing out.
    const gaveUp = runAdminBorg(stack.deps, repo, ['info'], { onStdout: () => {}, onStderr: () => {}, signal: AbortSignal.timeout(1000) });
    await expect(gaveUp).rejects.toThrow(/gave up waiting for the repository/);
    // A new job into the same repository runs now, beside the big backup, not after it.
    await backup(stack, 'small', repo);
    expect((await getJob(stack.deps, first.id)).state).toBe('running');
    await cancelJob(stack.deps, first.id);
    expect((await waitForJob(stack, first.id)).state).toBe('cancelled');
  });

  it('a check cancelled while it waits for the repository leaves its queue: new jobs run beside the running backup', async () => {
    const repo = await newRepo();
    // The big tree with lzma: a backup that runs for a long while (it is cancelled below).
    await addClient(stack.deps, { name: 'slow', host: sshd.host, port: sshd.port, user: big.username, paths: [big.path('data')], compression: 'lzma,6' });
    const slow = await startBackup(stack.deps, { client: 'slow', repository: repo });
    await untilSessionAttached(slow.id);
    const check = await startCheck(stack.deps, { repository: repo });
    await new Promise((r) => setTimeout(r, 1500)); // the check waits for the backup to end
    expect((await getJob(stack.deps, check.id)).state).toBe('running');
    await cancelJob(stack.deps, check.id);
    expect((await waitForJob(stack, check.id, 30_000)).state).toBe('cancelled');
    // Its activity left the repository's queue too: a new job runs beside the slow backup.
    const small2 = await startBackup(stack.deps, { client: 'small', repository: repo });
    expect((await waitForJob(stack, small2.id, 60_000)).state).toBe('succeeded');
    expect((await getJob(stack.deps, slow.id)).state).toBe('running');
    await cancelJob(stack.deps, slow.id);
    expect((await waitForJob(stack, slow.id)).state).toBe('cancelled');
  });
});
