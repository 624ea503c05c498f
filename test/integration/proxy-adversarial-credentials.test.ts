// Issue 3 acceptance, adversarial part 3: a job's credential is good for that job only, and only
// while it runs (DESIGN.md §4.7). The client's "borg" is test/fixtures/evil-borg.py, which keeps a
// copy of its job folder — SSH credential included — in ~/loot/<job id>.
//  * After the job ended, logging in to BorgCube's sshd with the kept credential gets no session and
//    is recorded as `credential-reuse` against that job. Its workflow has closed by then, so there
//    is no workflow left to signal: the record is the evidence.
//  * Merely offering a job's public key (no signature: anyone who learned it can) counts against
//    nothing — neither for an ended job nor for a running one whose credential was replaced
//    (issue 21 point 8). Only a signed login, which proves the private key, is recorded.
//  * Client A's credential opening client B's running job is a `wrong-job` violation of A's job;
//    B's job goes on untouched (and a forged report naming B's job does not stick to it) and
//    succeeds once we let it finish.
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listJobCredentials } from '../../db/queries/job-credentials.js';
import { listViolations } from '../../db/queries/jobs.js';
import { issueJobCredential } from '../../proxy/storage/credentials.js';
import { encodeFrame } from '../../proxy/protocol/frames.js';
import { getJob, startBackup } from '../../services/jobs.js';
import { borgCheck, describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import {
  expectCaught,
  listArchives,
  readResult,
  resetMarkers,
  runAttack,
  setUpWorld,
  touchOwned,
  workflowGotViolationSignal,
  type AdversarialWorld,
  type Party,
} from '../fixtures/adversarial.js';

describe('job credentials: one job, only while it runs', () => {
  let w: AdversarialWorld;

  beforeAll(async () => {
    w = await setUpWorld();
  }, 300_000);
  afterAll(async () => {
    if (w) process.stdout.write(`\nadversarial credentials, per attack:\n${w.timings.map((t) => `  ${t.attack.padEnd(12)} ${String(t.ms).padStart(6)} ms  ${t.state}  ${t.kinds.join(',')}`).join('\n')}\n`);
    await runCleanups();
  });

  /** ssh into BorgCube's sshd as the client's Unix user, with a key file from its loot. */
  function sshWithLoot(p: Party, jobId: string) {
    const loot = p.host.path('loot', jobId);
    const r = spawnSync(
      'setpriv',
      [
        `--reuid=${p.host.uid}`, `--regid=${p.host.gid}`, '--clear-groups',
        'ssh', '-F', '/dev/null', '-i', join(loot, 'id'),
        '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
        '-o', `UserKnownHostsFile=${join(loot, 'known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
        '-p', String(w.stack.config.ssh.port), `${w.stack.config.accounts.proxy}@${w.stack.config.ssh.host}`, 'borg', 'serve',
      ],
      { input: '', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: p.host.home }, timeout: 30_000 },
    );
    return { code: r.status, stderr: r.stderr.toString('utf8') };
  }

  /** Offers a public key to BorgCube's sshd without being able to sign with it (ssh's publickey query). */
  function offerPublicKeyOnly(p: Party, publicKey: string) {
    const file = p.host.path(`offered-${Date.now()}.pub`);
    writeFileSync(file, `${publicKey}\n`);
    chownSync(file, p.host.uid, p.host.gid);
    const r = spawnSync(
      'setpriv',
      [
        `--reuid=${p.host.uid}`, `--regid=${p.host.gid}`, '--clear-groups',
        'ssh', '-v', '-F', '/dev/null', '-i', file,
        '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
        '-o', 'UserKnownHostsFile=/dev/null', '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=no', '-o', 'BatchMode=yes',
        '-p', String(w.stack.config.ssh.port), `${w.stack.config.accounts.proxy}@${w.stack.config.ssh.host}`, 'borg', 'serve',
      ],
      { input: '', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: p.host.home }, timeout: 30_000 },
    );
    return { code: r.status, stderr: r.stderr.toString('utf8') };
  }

  it('a credential kept from an ended job is refused at login, and the attempt is recorded', async () => {
    // The evil borg behaves this time (a valid archive of its own) but keeps its credential.
    const run = await runAttack(w, w.a, 'legit');
    expect(run.job.state, `${run.job.error}\n${await describeJob(w.stack, run.job.id)}`).toBe('succeeded');
    expect(existsSync(w.a.host.path('loot', run.job.id, 'id'))).toBe(true);
    expect(existsSync(w.a.host.path('.borgcube', 'jobs', run.job.id))).toBe(false);
    const after = await listArchives(w.stack, w.repo);
    expect(after.map((x) => x.name)).toEqual([...w.earlier.map((x) => x.name), run.job.archiveName!].sort((p, q) => p.localeCompare(q)));

    // Offered without a signature: sshd answers that it would take the key, the client cannot
    // sign, and nothing is recorded against the job.
    const publicKey = spawnSync('ssh-keygen', ['-y', '-f', w.a.host.path('loot', run.job.id, 'id')]).stdout.toString('utf8').trim();
    const offer = offerPublicKeyOnly(w.a, publicKey);
    expect(offer.code, offer.stderr).toBe(255);
    expect(offer.stderr).toMatch(/Offering public key/);
    expect(await listViolations(w.stack.deps.db, run.job.id)).toEqual([]);

    const t0 = Date.now();
    const login = sshWithLoot(w.a, run.job.id);
    // Signed: sshd verified it, and the forced command only reports the reuse.
    expect(login.code, login.stderr).not.toBe(0);
    expect(login.stderr).toMatch(/no longer valid/);
    const violations = await listViolations(w.stack.deps.db, run.job.id);
    w.timings.push({ attack: 'reuse-login', ms: Date.now() - t0, state: (await getJob(w.stack.deps, run.job.id)).state, kinds: violations.map((v) => v.kind) });
    expect(violations.map((v) => v.kind)).toContain('credential-reuse');
    // The job stays what it was; its workflow is closed and cannot take a signal any more.
    expect((await getJob(w.stack.deps, run.job.id)).state).toBe('succeeded');
    const described = await w.stack.temporal.workflow.getHandle(run.job.id).describe();
    expect(described.status.name).toBe('COMPLETED');
    expect(await workflowGotViolationSignal(w, run.job.id)).toBe(false);

    // The same holds for the credential of a job that ended in a violation.
    const caught = await runAttack(w, w.a, 'list');
    await expectCaught(w, w.a, caught, ['forbidden-method'], { before: after });
    const again = sshWithLoot(w.a, caught.job.id);
    expect(again.code, again.stderr).not.toBe(0);
    expect(again.stderr).toMatch(/no longer valid/);
    expect((await listViolations(w.stack.deps.db, caught.job.id)).map((v) => v.kind)).toContain('credential-reuse');

    w.earlier = after;
    await borgCheck(w.stack, w.repo);
  });

  it("client A's credential on client B's running job: A's job is a violation, B's job is unaffected", async () => {
    // B's evil borg opens its own job and holds the session until we create ~/release.
    resetMarkers(w.b);
    const spec = w.b.host.path('attack.json');
    writeFileSync(spec, JSON.stringify({ attack: 'slow-legit', targets: {} }));
    chownSync(spec, w.b.host.uid, w.b.host.gid);
    const bJob = await startBackup(w.stack.deps, { client: w.b.client, repository: w.repo, triggeredBy: 'attack slow-legit' });
    const deadline = Date.now() + 120_000;
    while (!existsSync(w.b.host.path('connected'))) {
      if (Date.now() > deadline) throw new Error(`B's borg never connected\n${await describeJob(w.stack, bJob.id)}`);
      // Queued until admitted, then running.
      expect(['running', 'queued']).toContain((await getJob(w.stack.deps, bJob.id)).state);
      await new Promise((r) => setTimeout(r, 200));
    }

    // A's credential (BORG_RSH's ssh -i) with B's job as the repository path.
    const run = await runAttack(w, w.a, 'wrong-job', { job: bJob.id });
    // The repository checks need its lock, which waits for B's live session: they come after B.
    await expectCaught(w, w.a, run, ['wrong-job'], { repository: false });

    // A forged report — what a subverted proxy could send — naming B's job with a credential that
    // is not B's changes nothing for B.
    const forged = spawnSync('ssh-keygen', ['-y', '-f', w.a.host.path('loot', run.job.id, 'id')]);
    expect(forged.status).toBe(0);
    await new Promise<void>((resolve, reject) => {
      const sock = connect(w.stack.config.paths.storageSocket);
      sock.on('connect', () => {
        for (const part of encodeFrame({ t: 'violation', kind: 'forged', detail: 'pinned on B', jobId: bJob.id, authInfo: `publickey ${forged.stdout.toString('utf8').trim()}\n` })) sock.write(part);
      });
      sock.on('close', () => resolve());
      sock.on('error', reject);
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 5000).unref();
    });

    // B's credential replaced while B runs (its session is attached already): offering the old,
    // revoked key without a signature — what anyone who learned that public key can do — neither
    // counts against B nor ends it.
    const [oldCred] = await listJobCredentials(w.stack.deps.db, bJob.id);
    await issueJobCredential(w.stack.deps.db, bJob.id, oldCred!.clientId);
    const offer = offerPublicKeyOnly(w.a, oldCred!.publicKey);
    expect(offer.stderr).toMatch(/Offering public key/);
    expect(offer.stderr).toMatch(/Server accepts key/);

    expect((await getJob(w.stack.deps, bJob.id)).state).toBe('running');
    expect(await listViolations(w.stack.deps.db, bJob.id)).toEqual([]);
    expect(existsSync(w.b.host.path('.borgcube', 'jobs', bJob.id))).toBe(true);

    touchOwned(w.b, 'release');
    const b = await waitForJob(w.stack, bJob.id);
    expect(b.state, `${b.error}\n${await describeJob(w.stack, b.id)}`).toBe('succeeded');
    expect(readResult(w.b, b.id)?.outcome).toBe('completed');
    expect(await listViolations(w.stack.deps.db, b.id)).toEqual([]);
    expect(await workflowGotViolationSignal(w, b.id)).toBe(false);

    const archives = await listArchives(w.stack, w.repo);
    expect(archives.map((x) => x.name)).toEqual([...w.earlier.map((x) => x.name), b.archiveName!].sort((p, q) => p.localeCompare(q)));
    for (const x of w.earlier) expect(archives).toContainEqual(x);
    await borgCheck(w.stack, w.repo, '--verify-data');
  });
});
