// Issue 21 points 1, 2, 3 and 10: tenants cannot stall each other (DESIGN.md §4.10). The attacker
// (client A) runs test/fixtures/evil-borg.py, real borg code that stops where a hostile or broken
// client would; client C is honest and runs stock borg into the same repository.
//  1. A puts its manifest and then stalls before the commit — silent, SIGSTOPped, or sending the
//     commit request a byte at a time: C's backup takes about what it takes alone; a check gets
//     the repository once A has been silent for BORGCUBE_SESSION_IDLE_PREEMPT.
//  2. A sends `open` and hangs up while the repository is leased away (a prune or check holds
//     it): afterwards a check gets the repository at once. A process of A's job that outlives the
//     job (setsid) and opens the job later is refused; `borg check` finds nothing orphaned.
//  3. A second connection with a job's credential is a violation; a connection that never opens
//     its job is closed after BORGCUBE_SESSION_OPEN_TIMEOUT.
//  10. borg serve killed between A's puts and its commit: a later backup of the same data stores
//     it again (nothing rolled back counts as stored), and `borg check` finds no missing chunk.
import { chownSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { lastLogLines, listViolations } from '../../db/queries/jobs.js';
import type { Job } from '../../db/schema.js';
import { acquireRepositoryLease } from '../../proxy/storage/api.js';
import { addClient } from '../../services/clients.js';
import { cancelJob, getJob, listJobs, startBackup } from '../../services/jobs.js';
import { getRepository } from '../../services/repositories.js';
import { borgCheck, describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { listArchives, readResult, resetMarkers, runAttack, setUpWorld, touchOwned, type AdversarialWorld, type Party } from '../fixtures/adversarial.js';

const OPEN_TIMEOUT_S = 5;
const IDLE_PREEMPT_S = 15;

describe('tenants cannot stall each other', () => {
  let w: AdversarialWorld;
  let carol: ClientHost;
  /** C's backup alone (unchanged tree), ms. */
  let solo = 0;
  const figures: string[] = [];

  beforeAll(async () => {
    w = await setUpWorld({ env: { BORGCUBE_SESSION_OPEN_TIMEOUT: String(OPEN_TIMEOUT_S), BORGCUBE_SESSION_IDLE_PREEMPT: String(IDLE_PREEMPT_S) } });
    carol = await createClientHost({
      authorizedKeys: [w.stack.serverPublicKey],
      tree: {
        'data/carol.bin': { type: 'file', size: 8 * 1024 * 1024, seed: 'carol' },
        'data/carol.txt': 'carol\n'.repeat(20_000),
      },
    });
    await addClient(w.stack.deps, { name: 'carol', host: w.sshd.host, port: w.sshd.port, user: carol.username, paths: [carol.path('data')] });
    await honest(); // the first backup uploads; the ones measured find the tree unchanged
    const runs: number[] = [];
    for (let i = 0; i < 2; i++) runs.push((await honest()).ms);
    solo = Math.max(...runs);
    figures.push(`honest backup alone: ${runs.map((ms) => `${ms} ms`).join(', ')}`);
  }, 400_000);
  afterAll(async () => {
    if (figures.length) process.stdout.write(`\ntenant isolation:\n${figures.map((f) => `  ${f}`).join('\n')}\n`);
    await runCleanups();
  });

  // A test that failed may leave its jobs running (an attacker still stalled, the honest backup
  // behind it): the next test starts from a quiet repository all the same.
  afterEach(async () => {
    touchOwned(w.a, 'release');
    const deadline = Date.now() + 120_000;
    for (;;) {
      const { jobs } = await listJobs(w.stack.deps, { state: 'running' });
      if (!jobs.length) return;
      if (Date.now() > deadline) {
        for (const j of jobs) await cancelJob(w.stack.deps, j.id);
        for (const j of jobs) await waitForJob(w.stack, j.id).catch(() => undefined);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 400_000);

  /** A generous bound for C's backup during an attack: three times its time alone, plus 20 s. */
  const bound = () => 3 * solo + 20_000;

  async function honest(timeoutMs = 180_000): Promise<{ job: Job; ms: number }> {
    const t0 = Date.now();
    const started = await startBackup(w.stack.deps, { client: 'carol', repository: w.repo, triggeredBy: 'test honest' });
    const job = await waitForJob(w.stack, started.id, timeoutMs);
    const ms = Date.now() - t0;
    if (job.state !== 'succeeded') throw new Error(`the honest backup ended ${job.state}: ${job.error}\n${await describeJob(w.stack, job.id)}`);
    return { job, ms };
  }

  /** Starts an attack job of A without waiting for it; resolves once A wrote ~/connected. */
  async function startAttack(p: Party, spec: Record<string, unknown>): Promise<{ id: string; pid: number }> {
    resetMarkers(p);
    const f = p.host.path('attack.json');
    writeFileSync(f, JSON.stringify(spec));
    chownSync(f, p.host.uid, p.host.gid);
    const started = await startBackup(w.stack.deps, { client: p.client, repository: w.repo, triggeredBy: `attack ${String(spec.attack)}` });
    const deadline = Date.now() + 120_000;
    while (!existsSync(p.host.path('connected'))) {
      if (Date.now() > deadline) throw new Error(`the attacker never got to its stall\n${await describeJob(w.stack, started.id)}`);
      if (!['running', 'queued'].includes((await getJob(w.stack.deps, started.id)).state)) throw new Error(`the attack job ended early\n${await describeJob(w.stack, started.id)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return { id: started.id, pid: Number(readFileSync(p.host.path('connected'), 'utf8')) };
  }

  /** A check with the real key (the admin CLI takes the repository's lease first). */
  async function checkWithin(ms: number): Promise<number> {
    const t0 = Date.now();
    const r = await w.stack.cli(['borg', w.repo, '--', 'check'], { timeoutMs: ms });
    expect(r.code, `borg check did not get the repository within ${ms / 1000} s or failed:\n${r.err}`).toBe(0);
    return Date.now() - t0;
  }

  for (const stall of ['silent', 'stop', 'trickle'] as const) {
    it(`point 1: a client that stalls after its manifest write (${stall}) does not hold up another tenant's backup`, async () => {
      const attack = await startAttack(w.a, { attack: 'manifest-then-stall', stall, interval: 10 });
      let during: { job: Job; ms: number };
      try {
        during = await honest(bound());
      } finally {
        if (stall === 'stop') process.kill(attack.pid, 'SIGCONT');
        touchOwned(w.a, 'release');
      }
      figures.push(`honest backup while A stalls after its manifest write (${stall}): ${during.ms} ms (alone ${solo} ms, bound ${bound()} ms)`);
      expect(during.ms).toBeLessThan(bound());
      const a = await waitForJob(w.stack, attack.id);
      // Let go, a silent or stopped A commits its own archive; the trickler gives up.
      if (stall === 'trickle') expect(a.state).not.toBe('succeeded');
      else expect(a.state, `${a.error}\n${await describeJob(w.stack, a.id)}`).toBe('succeeded');
      const names = (await listArchives(w.stack, w.repo)).map((x) => x.name);
      expect(names).toContain(during.job.archiveName);
      if (stall !== 'trickle') expect(names).toContain(a.archiveName);
      figures.push(`  then borg check got the repository after ${await checkWithin(120_000)} ms`);
    });
  }

  it('point 1: a check waits for a client that stalls after its manifest write at most the idle bound', async () => {
    const attack = await startAttack(w.a, { attack: 'manifest-then-stall', stall: 'silent' });
    let ms: number;
    try {
      ms = await checkWithin((IDLE_PREEMPT_S + 60) * 1000);
    } finally {
      touchOwned(w.a, 'release');
    }
    figures.push(`borg check while A stalls after its manifest write: got the repository and finished in ${ms} ms (idle bound ${IDLE_PREEMPT_S} s)`);
    expect(ms).toBeLessThan((IDLE_PREEMPT_S + 30) * 1000);
    const a = await waitForJob(w.stack, attack.id);
    expect(a.state).not.toBe('running');
    // Nothing of A's uncommitted archive reached the manifest, and the repository is consistent.
    expect((await listArchives(w.stack, w.repo)).map((x) => x.name)).not.toContain(a.archiveName);
    await borgCheck(w.stack, w.repo);
  });

  it('point 2: a client that sends open and hangs up while a lease holds the repository never attaches', async () => {
    const repo = await getRepository(w.stack.deps, w.repo);
    // Preparing the job needs the repository: the lease (what a prune or check holds) comes after.
    const attack = await startAttack(w.a, { attack: 'open-and-hang-up', targets: {} });
    const lease = await acquireRepositoryLease(w.stack.config.paths.controlSocket, repo.id, { timeoutMs: 120_000 });
    try {
      touchOwned(w.a, 'release');
      // The attacker's open waits behind the lease; it hangs up meanwhile.
      const deadline = Date.now() + 120_000;
      while (readResult(w.a, attack.id)?.outcome !== 'refused') {
        if (Date.now() > deadline) throw new Error(`the attacker did not hang up\n${await describeJob(w.stack, attack.id)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // Its session's attach had time to reach the repository's queue.
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      lease.release();
    }
    const job = await waitForJob(w.stack, attack.id);
    expect(job.state).not.toBe('running');
    // The client was told only that its open failed; the job's log says why.
    const log = (await lastLogLines(w.stack.deps.db, attack.id, 200)).map((l) => l.message).join('\n');
    expect(log).toMatch(/a session of this job could not open the repository: the connection closed while the session was opening/);
    const ms = await checkWithin(30_000);
    figures.push(`borg check after an open that hung up behind a lease: ${ms} ms`);
    expect(ms).toBeLessThan(30_000);
  });

  it('point 2: a process of a job that outlives it (setsid) and opens the job later is refused', async () => {
    resetMarkers(w.a);
    const before = await listArchives(w.stack, w.repo);
    const run = await runAttack(w, w.a, 'late-attach');
    expect(run.job.state, `${run.job.error}\n${await describeJob(w.stack, run.job.id)}`).toBe('succeeded');
    const late = w.a.host.path('late', `${run.job.id}.json`);
    touchOwned(w.a, 'release');
    const deadline = Date.now() + 60_000;
    while (!existsSync(late) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const out = JSON.parse(readFileSync(late, 'utf8')) as { outcome: string; error?: string };
    expect(out.outcome, JSON.stringify(out)).toBe('refused');
    // Another tenant's backup commits as usual, and nothing is orphaned or missing.
    const c = await honest();
    const after = (await listArchives(w.stack, w.repo)).map((x) => x.name);
    expect(after).toEqual([...before.map((x) => x.name), run.job.archiveName!, c.job.archiveName!].sort((p, q) => p.localeCompare(q)));
    await borgCheck(w.stack, w.repo);
  });

  it('point 3: a second connection with the credential of a job that has a live session is a violation', async () => {
    const run = await runAttack(w, w.a, 'second-session');
    const kinds = (await listViolations(w.stack.deps.db, run.job.id)).map((v) => v.kind);
    figures.push(`second session of one job: refused as ${kinds.join(',')} in ${run.ms} ms`);
    expect(kinds, `${run.job.state}\n${await describeJob(w.stack, run.job.id)}`).toContain('second-session');
    expect(run.job.state).toBe('violation');
    expect(run.result?.outcome).toBe('refused');
    await borgCheck(w.stack, w.repo);
  });

  it('point 3: a connection that never opens its job is closed after the open timeout', async () => {
    const run = await runAttack(w, w.a, 'never-open', { wait: 120 });
    const hangup = run.result?.hangup_seconds;
    figures.push(`a connection that never sends open: closed after ${hangup?.toFixed(1)} s (timeout ${OPEN_TIMEOUT_S} s)`);
    expect(hangup, JSON.stringify(run.result)).toBeDefined();
    expect(hangup!).toBeLessThan(OPEN_TIMEOUT_S + 10);
  });

  it('point 10: objects of a transaction that borg serve lost never count as stored', async () => {
    const content = `content that A and B both have ${Date.now()}\n`;
    const attack = await startAttack(w.a, { attack: 'puts-then-stall', targets: { content } });
    // The repository service's borg serve for this repository: killed between A's puts and commit.
    const pids = borgServePids(w.repoPath);
    expect(pids.length, 'no borg serve of the repository found').toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    try {
      // While A's job still runs (its cleanup has not swept anything yet), B backs up the same
      // data chunk (same content, same id) and references it in its archive.
      const b = await runAttack(w, w.b, 'legit', { content });
      expect(b.job.state, `${b.job.error}\n${await describeJob(w.stack, b.job.id)}`).toBe('succeeded');
      expect(readResult(w.b, b.job.id)?.outcome).toBe('completed');
    } finally {
      touchOwned(w.a, 'release');
    }
    const a = await waitForJob(w.stack, attack.id);
    expect(a.state).not.toBe('succeeded');
    // With the real key: every chunk B's archive references is there.
    await borgCheck(w.stack, w.repo);
  });
});

/** Processes `borg serve --restrict-to-repository <repoPath>` (the repository service's upstream). */
function borgServePids(repoPath: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv.includes('serve') && argv.includes(repoPath) && argv.includes('--restrict-to-repository')) out.push(Number(d));
  }
  return out;
}
