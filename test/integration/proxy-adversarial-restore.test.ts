// Issue 20 acceptance, adversarial restore: a hacked client in a restore job reads nothing but the
// selected part of its archive and writes nothing. The client's "borg" is
// test/fixtures/evil-borg-restore.py, run by the job's run.sh through BorgCube's sshd, the proxy
// and the repository service (the restore job prepared by prepareRestore, test/fixtures/restore.ts).
// Each attempt must be refused and recorded as a violation (the credential revoked, the job ending
// in `violation`), the repository left as it was, and nothing the client received may open
// anything outside the objects the restore may serve.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../../activities/remote-borg/run-script.js';
import { listJobCredentials } from '../../db/queries/job-credentials.js';
import { findJob, lastLogLines, listViolations } from '../../db/queries/jobs.js';
import type { ArchiveDetail } from '../../db/queries/archives.js';
import { jobRepositoryUrl } from '../../infra/storage-layout.js';
import { decompress } from '../../proxy/borg/compression.js';
import { asKeyType, loadKey, type BorgKey } from '../../proxy/borg/keys.js';
import { parseManifest } from '../../proxy/borg/manifest.js';
import { LIMITS, Unpacker } from '../../proxy/borg/msgpack.js';
import { decryptObject, idHash } from '../../proxy/borg/objects.js';
import { readJobState } from '../../proxy/storage/job-state.js';
import { borgCheck } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { listArchives } from '../fixtures/adversarial.js';
import {
  addParty, adminArchive, allowedIds, attackResult, backupOf, finishRestore, prepareRestoreJob, realKey, refsOf, runRestore, setAttack, setUpRestoreWorld,
  type RestoreJob, type RestoreParty, type RestoreWorld,
} from '../fixtures/restore.js';

describe('a hacked client in a restore reads only its selection and writes nothing', () => {
  let w: RestoreWorld;
  let a: RestoreParty;
  let b: RestoreParty;
  let key: BorgKey;
  let a0: ArchiveDetail;
  let a1: ArchiveDetail;
  let before: Array<{ name: string; id: string }>;
  const targets: Record<string, string> = {};
  /** Per restore job: the ids its session may serve (the served archive included), kept before cleanup. */
  const servable = new Map<string, Set<string>>();

  beforeAll(async () => {
    w = await setUpRestoreWorld();
    a = await addParty(w, 'alice', {
      'sub/a.txt': 'alice a\n'.repeat(3000),
      'gone.bin': { type: 'file', size: 120_000, seed: 'alice-gone' },
      'other/secret.bin': { type: 'file', size: 130_000, seed: 'alice-other' },
    });
    b = await addParty(w, 'bob', { 'bob-secret.bin': { type: 'file', size: 150_000, seed: 'bob-secret' } });
    a0 = await backupOf(w, a);
    await backupOf(w, b);
    spawnSync('rm', ['-f', a.host.path('data', 'gone.bin')]);
    a.host.writeTree({ 'sub/new.txt': 'new\n' }, 'data');
    a1 = await backupOf(w, a);
    key = await realKey(w);
    before = await listArchives(w.stack, w.repo.name);

    const r0 = await refsOf(w, key, [a0.borgId]);
    const r1 = await refsOf(w, key, [a1.borgId]);
    const rb = await refsOf(w, key, before.filter((x) => x.name.startsWith('bob-')).map((x) => x.id));
    const items1 = [];
    for await (const i of (await adminArchive(w, key, a1.borgId)).items()) items1.push(i);
    const meta0 = (await adminArchive(w, key, a0.borgId)).meta;
    targets.outside = [...r0].find((id) => !r1.has(id) && !meta0.items.some((m) => m.toString('hex') === id) && id !== a0.borgId)!;
    targets.otherItems = meta0.items[0]!.toString('hex');
    targets.otherClient = [...rb].find((id) => !r0.has(id) && !r1.has(id))!;
    targets.unselected = items1.find((i) => i.path.toString().endsWith('other/secret.bin'))!.chunks![0]!.id.toString('hex');
    targets.realArchive = a1.borgId;
    for (const [k, v] of Object.entries(targets)) expect(v, k).toMatch(/^[0-9a-f]{64}$/);
    expect(r1.has(targets.otherItems)).toBe(false);
  }, 300_000);
  afterAll(runCleanups);

  /** A restore of alice's "sub" folder onto alice, prepared; what its session may serve is remembered. */
  async function prepareSub(): Promise<RestoreJob> {
    const job = await prepareRestoreJob(w, a, a1, { paths: [`${a.dataInArchive}/sub`] });
    servable.set(job.jobId, new Set([...allowedIds(w, job.jobId), ...Object.keys(readJobState(w.stack.config, job.jobId)!.idMap)]));
    return job;
  }

  /** A restore of the "sub" folder of alice's latest archive onto alice, its borg doing `attack`. */
  async function attack(name: string, t: Record<string, unknown> = {}, path?: string): Promise<{ job: RestoreJob; result: ReturnType<typeof attackResult> }> {
    setAttack(a, name, t, path);
    const job = await prepareSub();
    await runRestore(w, a, job, { borg: a.evilPath, paths: [`${a.dataInArchive}/sub`] });
    return { job, result: attackResult(a, job.jobId) };
  }

  async function expectCaught(run: { job: RestoreJob; result: ReturnType<typeof attackResult> }, kind: string, detail: RegExp): Promise<void> {
    const { jobId } = run.job;
    const violations = await listViolations(w.stack.db.handle.db, jobId);
    const context = `violations: ${JSON.stringify(violations.map((v) => [v.kind, v.detail]))}\nattacker: ${JSON.stringify(run.result?.steps.map((s) => s.what))} ${run.result?.error ?? ''}\n${w.stack.storage.tail(15)}`;
    expect(run.result?.outcome, context).toBe('refused');
    expect(violations.map((v) => v.kind), context).toContain(kind);
    // Refused for what it tried, not for something that happened on the way.
    expect(violations.find((v) => v.kind === kind)?.detail, context).toMatch(detail);
    // The credential stopped working the moment the violation was recorded.
    expect((await listJobCredentials(w.stack.db.handle.db, jobId)).every((c) => c.revokedAt !== null)).toBe(true);
    await finishRestore(w, jobId, false);
    expect((await findJob(w.stack.db.handle.db, jobId))?.state).toBe('violation');
    expect(await listArchives(w.stack, w.repo.name)).toEqual(before);
  }

  const gets: Array<[string, string]> = [
    ['an object outside the archive', 'outside'],
    ["another archive's items chunk", 'otherItems'],
    ["another client's chunk", 'otherClient'],
    ['a chunk of the archive outside the selected paths', 'unselected'],
    ['the archive object as stored (not the one the job was served)', 'realArchive'],
  ];
  for (const [what, t] of gets) {
    it(`get of ${what}: forbidden-get`, async () => {
      await expectCaught(await attack('get', { ids: [targets[t]] }), 'forbidden-get', new RegExp(`^get of object ${targets[t]}`));
    });
  }

  // What the service (or, for methods it never forwards, the forced command) says it refused.
  const writes: Array<[string, RegExp]> = [
    ['put', /^put is not allowed/],
    ['delete', /^delete is not allowed/],
    ['manifest-write', /^putManifest is not allowed/],
    ['commit', /^commit is not allowed/],
    ['nonce', /^nonce is not allowed/],
    ['list', /method "list" is not allowed/],
    ['scan', /method "scan" is not allowed/],
  ];
  for (const [name, detail] of writes) {
    it(`${name}: forbidden-method`, async () => {
      await expectCaught(await attack(name, name === 'delete' ? { id: a1.borgId } : {}), 'forbidden-method', detail);
    });
  }

  it('open with exclusive=True (what borg create sends, never borg extract): bad-arguments, said in the job log', async () => {
    const run = await attack('read-selection', { exclusive: true });
    const log = (await lastLogLines(w.stack.db.handle.db, run.job.jobId, 50)).map((l) => l.message).join('\n');
    await expectCaught(run, 'bad-arguments', /^open: exclusive=True, but a restore job's stock borg opens with exclusive=False/);
    expect(log).toMatch(/violation \(bad-arguments\): open: exclusive=True/);
    expect(run.result?.steps.some((s) => s.what === 'read the selection')).toBe(false);
  });

  it('reading what the restore may serve works; after the job the credential opens nothing', async () => {
    // The legitimate reads: the archive, its items, the selection's chunks.
    const run = await attack('read-selection');
    expect(run.result?.outcome, JSON.stringify(run.result)).toBe('completed');
    expect(run.result?.steps.find((s) => s.what === 'read the selection')?.chunks).toBeGreaterThan(0);
    await finishRestore(w, run.job.jobId, true);
    const loot = a.host.path('loot', run.job.jobId);
    const login = spawnSync('setpriv', [
      `--reuid=${a.host.uid}`, `--regid=${a.host.gid}`, '--clear-groups',
      'ssh', '-F', '/dev/null', '-i', join(loot, 'id'), '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
      '-o', `UserKnownHostsFile=${join(loot, 'known_hosts')}`, '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
      '-p', String(w.stack.config.ssh.port), `${w.stack.config.accounts.proxy}@${w.stack.config.ssh.host}`, 'borg', 'serve',
    ], { input: '', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: a.host.home }, timeout: 30_000 });
    // sshd verified the signature; the forced command it got only reports the reuse.
    expect(login.status, login.stderr.toString()).not.toBe(0);
    expect(login.stderr.toString()).toMatch(/no longer valid/);
    expect((await listViolations(w.stack.db.handle.db, run.job.jobId)).map((v) => v.kind)).toContain('credential-reuse');
  });

  it("a restore's credential on a backup job's path, and a backup's on a restore's: wrong-job", async () => {
    const backup = await w.driver.prepare(b.client, w.repo.id, b.user);
    const caught = await attack('wrong-job', {}, `/${backup.jobId}`);
    await expectCaught(caught, 'wrong-job', new RegExp(`credential of job ${caught.job.jobId} was used to open job ${backup.jobId}`));
    expect(await listViolations(w.stack.db.handle.db, backup.jobId)).toEqual([]);

    // The other way round: bob's backup job, its credential, alice's running restore job's path.
    setAttack(a, 'read-selection');
    const restore = await prepareSub();
    setAttack(b, 'wrong-job', {}, `/${restore.jobId}`);
    const argv = [b.evilPath, 'create', `${jobRepositoryUrl(w.stack.config, backup.jobId)}::evil`, b.data];
    b.user.writeFile(backup.script, runScript({ jobId: backup.jobId, dir: backup.dir, argv }), 0o700);
    await w.driver.run(backup, b.user).catch(() => {});
    expect(attackResult(b, backup.jobId)?.outcome).toBe('refused');
    expect((await listViolations(w.stack.db.handle.db, backup.jobId)).map((v) => v.kind)).toContain('wrong-job');
    expect(await listViolations(w.stack.db.handle.db, restore.jobId)).toEqual([]);
    await w.driver.finish(backup, false).catch(() => {});
    // The restore job is untouched and still works.
    const r = await runRestore(w, a, restore, { borg: a.evilPath, paths: [`${a.dataInArchive}/sub`] });
    expect(attackResult(a, restore.jobId)?.outcome, r.log).toBe('completed');
    await finishRestore(w, restore.jobId, true);
  });

  it('a restore session waiting for its client holds nothing: a server-side borg check runs meanwhile', async () => {
    for (const f of ['connected', 'release']) rmSync(a.host.path(f), { force: true });
    setAttack(a, 'slow-read');
    const job = await prepareSub();
    const running = runRestore(w, a, job, { borg: a.evilPath, paths: [`${a.dataInArchive}/sub`] });
    const deadline = Date.now() + 60_000;
    while (!existsSync(a.host.path('connected'))) {
      if (Date.now() > deadline) throw new Error(`the restore never connected\n${w.stack.storage.tail(20)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // `borg check` needs the repository to itself (RepositoryHandle.exclusive): a session holding
    // a share of the upstream would keep it waiting until the restore ended.
    const t0 = Date.now();
    await borgCheck(w.stack, w.repo.name);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(attackResult(a, job.jobId)).toBeUndefined();
    a.user.writeFile(a.host.path('release'), '');
    await running;
    const result = attackResult(a, job.jobId);
    expect(result?.outcome, JSON.stringify(result)).toBe('completed');
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
    await finishRestore(w, job.jobId, true);
  });

  it('nothing any client received opens anything but the objects its restore may serve; the repository checks clean', async () => {
    let objects = 0;
    for (const jobId of readdirSync(a.host.path('loot'))) {
      const dir = a.host.path('loot', jobId);
      // A restore's job key is authenticated (proxy/storage/job-key.ts): its objects are [0x07][payload].
      const keyText = readFileSync(join(dir, 'key'), 'utf8');
      const jobKey = loadKey(keyText, readFileSync(join(dir, 'passphrase'), 'utf8').trim(), asKeyType(0x07));
      expect(jobKey.encKey.equals(key.encKey)).toBe(false);
      const u = new Unpacker(LIMITS.client);
      u.feed(readFileSync(join(dir, 'received')));
      for (let v = u.next(); v !== undefined; v = u.next()) {
        const r = v instanceof Map ? v.get('r') : undefined;
        if (!Buffer.isBuffer(r)) continue;
        // Nothing arrives in the repository's own envelope: read as one, no reply passes the real key's MAC.
        if (r.length >= 41) {
          const asStored = Buffer.from(r);
          asStored[0] = key.type;
          expect(() => decryptObject(key, asStored)).toThrow(/MAC/);
        }
        // Bytes the client gets: the job key (load_key), objects, and the fake repository id (open),
        // which may start with 0x07 too (1 in 256) but is no object.
        if (r.toString('utf8') === keyText) continue;
        const plain = r[0] === 0x07 ? await decompress(decryptObject(jobKey, r).payload).then((d) => d.data, () => undefined) : undefined;
        if (!plain) {
          expect(r.length, 'a reply that is neither the repository id, the job key nor an object').toBe(32);
          continue;
        }
        objects++;
        const id = idHash(jobKey, plain).toString('hex');
        if (servable.get(jobId)?.has(id)) continue;
        // Not a servable object: then it is the manifest, which lists only the restored archive.
        const m = parseManifest(jobKey, plain);
        expect([...m.archives.keys()].map((n) => Buffer.from(n, 'latin1').toString())).toEqual([a1.name]);
      }
    }
    expect(objects).toBeGreaterThan(10);
    await borgCheck(w.stack, w.repo.name, '--verify-data');
  });
});
