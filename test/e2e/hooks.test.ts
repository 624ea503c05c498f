// Issue 24, hooks, end to end (real sshd client hosts, Temporal, PostgreSQL, borg): a failing
// before hook fails the job before anything reaches the client; an after hook runs after a
// cancelled backup; a hook that hangs is killed at its timeout with nothing left running; a hook
// that prints 100 MB leaves a bounded log and a bounded worker; a missing command and hostile
// output each end in one clear line. Client hooks run before policy hooks, and after them at the end.
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/subprocess.js';
import { addClient } from '../../services/clients.js';
import { setClientHooks } from '../../services/hooks.js';
import { cancelJob, getJob, jobLogTail, startBackup } from '../../services/jobs.js';
import { getPolicy } from '../../services/policies.js';
import { backup, describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { peakRss, waitUntil } from '../harness/process.js';
import { createClientHost, gatedBorg, type ClientHost } from '../harness/client-host.js';
import { cleanUpSchedules } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

describe('hooks', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let repoCount = 0;
  let clientCount = 0;

  async function newRepo(): Promise<string> {
    const name = `r${++repoCount}`;
    await expectCli(stack, ['repo', 'add', name, '--path', `${stack.dataDir}-repos/${name}`]);
    return name;
  }

  /** A fresh client host (nothing of BorgCube in its home yet) and its client row. */
  async function newClient(opts: { shell?: string; borgPath?: string } = {}): Promise<{ name: string; host: ClientHost }> {
    const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], shell: opts.shell, tree: { 'data/a.txt': 'alpha\n' } });
    const name = `c${++clientCount}`;
    await addClient(stack.deps, { name, host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: opts.borgPath });
    return { name, host };
  }

  async function logOf(jobId: string): Promise<string[]> {
    return (await jobLogTail(stack.deps, jobId, 2000)).map((l) => `${l.level} ${l.message}`);
  }

  /** Processes of the client's account still running (not zombies) whose command line matches. */
  async function running(host: ClientHost, pattern: string): Promise<string> {
    const ps = await run('pgrep', ['--runstates', 'D,R,S,T,t', '-a', '-u', String(host.uid), '-f', pattern]);
    return ps.stdout.toString().trim();
  }

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    sshd = await startClientSshd();
  });
  afterAll(runCleanups);

  it('a failing before hook fails the job in one line before anything is pushed; the after hook still runs', async () => {
    const repo = await newRepo();
    const { name, host } = await newClient();
    // Hostile output: markup, a terminal escape, a carriage return. It must stay text.
    await expectCli(stack, ['client', 'hooks', name, '--before', `printf '<b>bold</b> & \\033[31mred\\r\\n'; echo "no snapshot: <script>x</script>"; exit 3`, '--after', 'echo "$BORGCUBE_HOOK $BORGCUBE_JOB_STATE" > ~/after-ran']);
    const shown = await expectCli(stack, ['client', 'hooks', name]);
    expect(shown.out).toContain(`printf '<b>bold</b> & \\033[31mred\\r\\n'; echo "no snapshot: <script>x</script>"; exit 3`);
    const job = await backup(stack, name, repo, 'failed');
    expect(job.error).toBe(`before hook "printf '<b>bold</b> & \\\\033[31mred\\\\r\\\\n'; echo \\"no snapshot: <script>x</script>\\"; exit 3" failed with exit code 3: no snapshot: <script>x</script>`);
    // Nothing of the job reached the client: no job folder (not even the jobs folder), no credential.
    expect(existsSync(host.path('.borgcube', 'jobs')), 'a job folder was made').toBe(false);
    expect(existsSync(host.path('.borgcube', 'hooks', `${job.id}.pid`))).toBe(false);
    expect(readFileSync(host.path('after-ran'), 'utf8')).toBe('after failed\n');
    const log = await logOf(job.id);
    // The control characters are stored escaped, the markup as it was printed.
    expect(log).toContain('INFO <b>bold</b> & \\x1b[31mred\\x0d');
    expect(log).toContain('INFO no snapshot: <script>x</script>');
    expect(log.some((l) => /^INFO after hook finished/.test(l))).toBe(true);
    expect(log.some((l) => /borg create/.test(l)), log.join('\n')).toBe(false);
  });

  it('a command missing on the client: exit 127 in one clear line', async () => {
    const repo = await newRepo();
    const { name, host } = await newClient();
    await setClientHooks(stack.deps, name, { before: [{ command: 'pg-snapshot-tool --all' }] });
    const job = await backup(stack, name, repo, 'failed');
    expect(job.error).toMatch(/^before hook "pg-snapshot-tool --all" failed with exit code 127 \(command not found\): .*pg-snapshot-tool.*not found$/);
    expect(existsSync(host.path('.borgcube', 'jobs'))).toBe(false);
  });

  it('an after hook runs after a cancelled backup, once borg is gone', async () => {
    const repo = await newRepo();
    const pre = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n' } });
    const gate = gatedBorg(pre);
    const name = `c${++clientCount}`;
    await addClient(stack.deps, { name, host: sshd.host, port: sshd.port, user: pre.username, paths: [pre.path('data')], borgPath: gate.path });
    // The after hook records the job's state and whether borg still ran when it started
    // ([b]: the pattern does not match the hook's own command line).
    await setClientHooks(stack.deps, name, { after: [{ command: `{ pgrep -u "$(id -u)" -f '[b]org create' > /dev/null && echo borg-running; echo "$BORGCUBE_JOB_STATE"; } > ~/after-ran` }] });
    gate.hold();
    const job = await startBackup(stack.deps, { client: name, repository: repo });
    await waitUntil(async () => (await getJob(stack.deps, job.id)).phase === 'run' && existsSync(pre.path('.borgcube', 'jobs', job.id, 'borg.pid')), 120_000);
    await cancelJob(stack.deps, job.id);
    const done = await waitForJob(stack, job.id);
    gate.release();
    expect(done.state, await describeJob(stack, job.id)).toBe('cancelled');
    expect(done.error).toBe('cancelled');
    expect(readFileSync(pre.path('after-ran'), 'utf8')).toBe('cancelled\n');
    expect(existsSync(pre.path('.borgcube', 'jobs', job.id))).toBe(false);
    expect(await running(pre, 'borg')).toBe('');
  });

  it('a hook that hangs is killed at its timeout with everything it started (dash as the login shell)', async () => {
    const repo = await newRepo();
    const { name, host } = await newClient({ shell: '/bin/sh' });
    await expectCli(stack, ['client', 'hooks', name, '--before', 'sleep 7301 & sleep 7302 > /dev/null 2>&1 & echo waiting; sleep 7303', '--timeout', '3s']);
    const t0 = Date.now();
    const job = await backup(stack, name, repo, 'failed');
    expect(job.error).toBe('before hook "sleep 7301 & sleep 7302 > /dev/null 2>&1 & echo waiting; sleep 7303" timed out after 3 s: its processes on the client were killed');
    expect(Date.now() - t0).toBeLessThan(120_000);
    expect(await running(host, 'sleep 730')).toBe('');
    expect(existsSync(host.path('.borgcube', 'jobs'))).toBe(false);
    expect(existsSync(host.path('.borgcube', 'hooks', `${job.id}.pid`))).toBe(false);
    expect(await logOf(job.id)).toContain('INFO waiting');
  });

  it('a hook that prints 100 MB (99 MB of 99-byte lines and their newlines): the log keeps a bounded head, the worker stays small, the failure shows beside the stored archive', async () => {
    const repo = await newRepo();
    const { name, host } = await newClient();
    await setClientHooks(stack.deps, name, { after: [{ command: "head -c 99000000 /dev/zero | tr '\\0' 'x' | fold -w 99; echo; echo last words; exit 5" }] });
    const job = await backup(stack, name, repo, 'failed');
    // The backup itself succeeded: its archive and stats are kept, and the error says both.
    expect(job.error).toBe(`after hook "head -c 99000000 /dev/zero | tr '\\\\0' 'x' | fold -w 99; echo; echo last words; exit 5" failed with exit code 5: last words (the backup itself succeeded: archive ${job.archiveName} is stored)`);
    expect(job.stats).toMatchObject({ nfiles: 1 });
    const archives = await expectCli(stack, ['borg', repo, '--', 'list', '--short']);
    expect(archives.out.split('\n')).toContain(job.archiveName);
    const log = await logOf(job.id);
    const hookLines = log.filter((l) => /^INFO x{99}$/.test(l));
    expect(hookLines.length).toBeGreaterThan(0);
    expect(hookLines.length).toBeLessThanOrEqual(200);
    expect(log.some((l) => /^WARNING after hook: 1000000\d\d bytes of output in all: only the first \d+ lines are kept, \d+ more bytes were dropped$/.test(l)), log.slice(-5).join('\n')).toBe(true);
    expect(log.length).toBeLessThan(400);
    expect(peakRss(stack.worker.pid!)).toBeLessThan(600 * 1024 * 1024);
    // Nothing left on the client: no job folder, no hook process or its pid file.
    expect(existsSync(host.path('.borgcube', 'jobs', job.id))).toBe(false);
    expect(existsSync(host.path('.borgcube', 'hooks', `${job.id}.pid`))).toBe(false);
    expect(await running(host, 'head -c 99000000|fold -w 99')).toBe('');
  });

  it("a policy's hooks run after the client's before the backup, and before them after it", async () => {
    const repo = await newRepo();
    const { name, host } = await newClient();
    await expectCli(stack, ['policy', 'add', `${name}-p`, '--client', name, '--repo', repo]);
    await expectCli(stack, ['client', 'hooks', name, '--before', 'echo client-before >> ~/order', '--after', 'echo client-after >> ~/order', '--on-failure', 'echo client-fail >> ~/order']);
    await expectCli(stack, ['policy', 'hooks', `${name}-p`, '--before', 'echo policy-before >> ~/order', '--after', 'echo policy-after >> ~/order']);
    const policy = await getPolicy(stack.deps, `${name}-p`);
    const started = await startBackup(stack.deps, { client: name, repository: repo, policyId: policy.id });
    const job = await waitForJob(stack, started.id);
    expect(job.state, await describeJob(stack, job.id)).toBe('succeeded');
    expect(readFileSync(host.path('order'), 'utf8')).toBe('client-before\npolicy-before\npolicy-after\nclient-after\n');
    // Bad input is one line and changes nothing.
    const bad = await expectCli(stack, ['policy', 'hooks', `${name}-p`, '--before', ' ', '--timeout', '2d'], 2);
    expect(bad.err.trim().split('\n')).toHaveLength(1);
    expect((await getPolicy(stack.deps, `${name}-p`)).hooks.before).toEqual([{ command: 'echo policy-before >> ~/order' }]);
    await expectCli(stack, ['client', 'hooks', name, '--clear']);
    expect((await expectCli(stack, ['client', 'hooks', name])).out.trim()).toBe(`client ${name} has no hooks`);
  });
});
