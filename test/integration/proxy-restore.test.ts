// Issue 20 point 4, the honest path: stock borg 1.2.4 `borg extract` on a client, through
// BorgCube's sshd and the proxy in restore mode, from a job prepared by prepareRestore. A full
// and a partial restore give back exactly what was backed up (a partial one with a hard link
// whose other name is outside the selection); what the session may serve is only the archive's
// objects, and in the default `client` dedup scope only objects of that client's own archives. A
// job prepared before its selection (as the workflow asks) restores the same, and a selection that
// fails meanwhile ends the client's borg without a violation.
import { existsSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findJobKey } from '../../db/queries/job-keys.js';
import { findJob, listViolations } from '../../db/queries/jobs.js';
import { jobServerDir } from '../../infra/storage-layout.js';
import type { ArchiveDetail } from '../../db/queries/archives.js';
import { addRepository } from '../../services/repositories.js';
import { borgCheck } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { describeTree } from '../harness/client-host.js';
import { addParty, adminArchive, allowedIds, backupOf, finishRestore, prepareRestoreJob, realKey, refsOf, runRestore, setUpRestoreWorld, startRestoreJob, type RestoreJob, type RestoreParty, type RestoreWorld } from '../fixtures/restore.js';

describe('restore through the proxy with stock borg', () => {
  let w: RestoreWorld;
  let a: RestoreParty;
  let b: RestoreParty;
  let aArchives: ArchiveDetail[];
  let bArchive: ArchiveDetail;

  beforeAll(async () => {
    w = await setUpRestoreWorld();
    // The hard link's first name (its master in the archive) comes first, outside "sub".
    a = await addParty(w, 'alice', {
      'linked.bin': { type: 'file', size: 300_000, seed: 'alice-linked', mode: 0o640, mtime: 1_600_000_000 },
      'top.txt': { type: 'file', content: 'top\n'.repeat(1000), mtime: 1_600_000_100 },
      'sub/a.txt': 'a\n'.repeat(2000),
      'sub/deeper/b.bin': { type: 'file', size: 1_500_000, seed: 'alice-b', mode: 0o600 },
      'sub/empty': '',
      'sub/link': { type: 'symlink', target: '../top.txt' },
      'other/secret.bin': { type: 'file', size: 200_000, seed: 'alice-other' },
    }, [['linked.bin', 'sub/linked-too.bin']]);
    b = await addParty(w, 'bob', { 'bob-secret.bin': { type: 'file', size: 150_000, seed: 'bob-secret' } });
    aArchives = [await backupOf(w, a)];
    bArchive = await backupOf(w, b);
    a.host.writeTree({ 'later.txt': 'written after the first backup\n' }, 'data');
    aArchives.push(await backupOf(w, a));
  }, 300_000);
  afterAll(runCleanups);

  const restoredData = (job: { target: string }, p: RestoreParty) => join(job.target, p.dataInArchive);

  /** Runs the restore with stock borg and ends the job: the party's data comes back identical, no violation. */
  async function restoresIdentically(world: RestoreWorld, p: RestoreParty, job: RestoreJob) {
    const r = await runRestore(world, p, job);
    expect(r.rc, r.log).toBe('0');
    expect(describeTree(restoredData(job, p))).toEqual(describeTree(p.data));
    await finishRestore(world, job.jobId, true);
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
  }

  it('a whole archive comes back identical, hard link included, and the job leaves nothing behind', async () => {
    const job = await prepareRestoreJob(w, a, aArchives[1]!);
    // 8 regular files, the linked one under two names.
    expect(job.prepared.archiveName).toBe(aArchives[1]!.name);
    expect(job.prepared.files).toBe(8);
    // As borg's progress total counts them: file contents, and sub/link's target.
    expect(job.prepared.bytes).toBe(300_000 * 2 + 4000 + 4000 + 1_500_000 + 0 + 200_000 + 'written after the first backup\n'.length + '../top.txt'.length);
    // The job key is `authenticated` (proxy/storage/job-key.ts): borg reads it through load_key.
    expect((await findJobKey(w.stack.db.handle.db, job.jobId))?.keyType).toBe(0x07);
    expect(job.prepared.authenticatedKey).toBe(true);
    const r = await runRestore(w, a, job);
    expect(r.rc, r.log).toBe('0');
    expect(describeTree(restoredData(job, a))).toEqual(describeTree(a.data));
    const st = (rel: string) => statSync(join(restoredData(job, a), rel));
    expect(st('sub/linked-too.bin').ino).toBe(st('linked.bin').ino);
    await finishRestore(w, job.jobId, true);
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
    expect((await findJob(w.stack.db.handle.db, job.jobId))?.state).toBe('succeeded');
    expect(existsSync(a.host.path('.borgcube', 'jobs', job.jobId))).toBe(false);
    // cleanupJob of a restore: its server folder and job key are gone, nothing was swept.
    expect(existsSync(jobServerDir(w.stack.config, job.jobId))).toBe(false);
    expect(await findJobKey(w.stack.db.handle.db, job.jobId)).toBeUndefined();
  });

  it('one folder and one file: exactly those, the hard link written from its master outside the folder', async () => {
    const paths = [`${a.dataInArchive}/sub`, `${a.dataInArchive}/top.txt`];
    // The case this test is about: in the archive, sub's name of the hard link is the slave.
    const items = [];
    for await (const i of (await adminArchive(w, await realKey(w), aArchives[0]!.borgId)).items()) items.push(i);
    const slave = items.find((i) => i.path.toString() === `${a.dataInArchive}/sub/linked-too.bin`);
    expect(slave?.source?.toString()).toBe(`${a.dataInArchive}/linked.bin`);
    const job = await prepareRestoreJob(w, a, aArchives[0]!, { paths });
    expect(job.prepared).toMatchObject({ items: 8, files: 5, bytes: 4000 + 4000 + 1_500_000 + 0 + 300_000 + '../top.txt'.length });
    // The unselected folder's data is not even servable.
    const refs = await refsOf(w, await realKey(w), [aArchives[0]!.borgId]);
    const allowed = allowedIds(w, job.jobId);
    expect([...allowed].every((id) => refs.has(id))).toBe(true);
    const r = await runRestore(w, a, job, { paths });
    expect(r.rc, r.log).toBe('0');
    const original = describeTree(a.data);
    const want = Object.fromEntries(Object.entries(original).filter(([k]) => k === 'top.txt' || k === 'sub' || k.startsWith('sub/')));
    expect(describeTree(restoredData(job, a))).toEqual(want);
    await finishRestore(w, job.jobId, true);
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
  });

  it('in client dedup scope a restore can serve only objects of that client\'s own archives', async () => {
    const key = await realKey(w);
    const own = await refsOf(w, key, aArchives.map((x) => x.borgId));
    const bobs = await refsOf(w, key, [bArchive.borgId]);
    const job = await prepareRestoreJob(w, b, aArchives[1]!);
    const allowed = allowedIds(w, job.jobId);
    expect(allowed.size).toBeGreaterThan(5);
    for (const id of allowed) expect(own.has(id), `allowed object ${id} is in none of alice's archives`).toBe(true);
    // Bob's own data is not in alice's archives, so a restore of them onto bob cannot serve it.
    const bobOnly = [...bobs].filter((id) => !own.has(id));
    expect(bobOnly.length).toBeGreaterThan(0);
    for (const id of bobOnly) expect(allowed.has(id)).toBe(false);
    // …and the restore onto another client works.
    const r = await runRestore(w, b, job);
    expect(r.rc, r.log).toBe('0');
    // Written by bob's account: bob owns the files (borg extract is not root there).
    const mine = (t: ReturnType<typeof describeTree>) => Object.fromEntries(Object.entries(t).map(([k, { uid: _u, gid: _g, ...rest }]) => [k, rest]));
    expect(mine(describeTree(restoredData(job, a)))).toEqual(mine(describeTree(a.data)));
    await finishRestore(w, job.jobId, true);
    await borgCheck(w.stack, w.repo.name);
  });

  it('prepared before its selection (as the workflow asks), borg starts at once and the archive comes back identical', async () => {
    const job = await startRestoreJob(w, a, aArchives[1]!);
    expect(job.prepared).toEqual({ archiveName: aArchives[1]!.name, authenticatedKey: true, selecting: true });
    const r = await runRestore(w, a, job);
    expect(r.rc, r.log).toBe('0');
    expect(describeTree(restoredData(job, a))).toEqual(describeTree(a.data));
    // The selection's counts, as a restore prepared whole gives them (the first test).
    const counts = await w.stack.storageCall<Record<string, number>>('restoreSelection', { jobId: job.jobId });
    expect(counts).toMatchObject({ files: 8, bytes: 300_000 * 2 + 4000 + 4000 + 1_500_000 + 0 + 200_000 + 'written after the first backup\n'.length + '../top.txt'.length });
    expect(allowedIds(w, job.jobId).size).toBeGreaterThan(5);
    await finishRestore(w, job.jobId, true);
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
  });

  it('a selection that fails while borg starts ends borg with an error, not a violation, and writes nothing', async () => {
    const paths = [`${a.dataInArchive}/nope`];
    const job = await startRestoreJob(w, a, aArchives[0]!, { paths });
    const r = await runRestore(w, a, job, { paths });
    expect(r.rc, r.log).not.toBe('0');
    expect(r.log).toMatch(/this restore's selection failed, or is not being made, on the storage host/);
    expect(readdirSync(job.target)).toEqual([]);
    await expect(w.stack.storageCall('restoreSelection', { jobId: job.jobId })).rejects.toThrow(`path ${a.dataInArchive}/nope is not in archive ${aArchives[0]!.name}`);
    await finishRestore(w, job.jobId, false);
    expect(await listViolations(w.stack.db.handle.db, job.jobId)).toEqual([]);
  });

  it('bad jobs are refused with one clear line', async () => {
    await expect(prepareRestoreJob(w, a, aArchives[0]!, { paths: [`${a.dataInArchive}/nope`] })).rejects.toThrow(`path ${a.dataInArchive}/nope is not in archive ${aArchives[0]!.name}`);
    await expect(prepareRestoreJob(w, a, { ...aArchives[0]!, borgId: '00'.repeat(32) })).rejects.toThrow(`archive ${aArchives[0]!.name} is no longer in repository rst`);
    const backupJob = aArchives[0]!.jobId!;
    await expect(w.stack.storageCall('prepareRestore', { jobId: backupJob })).rejects.toThrow(/is a backup job, not a restore/);
  });

  it('a restore whose workflow asks for no authenticated job key (an older worker\'s) gets an AES key file and comes back identical', async () => {
    const job = await prepareRestoreJob(w, a, aArchives[1]!, { jobKey: 'keyfile' });
    expect(job.prepared.authenticatedKey).toBe(false);
    expect((await findJobKey(w.stack.db.handle.db, job.jobId))?.keyType).toBe(0x00);
    // A key file, read through BORG_KEY_FILE.
    expect(readFileSync(join(job.dir, 'key'), 'utf8')).toMatch(/^BORG_KEY [0-9a-f]{64}\n/);
    await restoresIdentically(w, a, job);
  });

  it('a repokey-blake2 repository restores through an authenticated-blake2 job key, identical', async () => {
    const path = join(w.stack.reposDir, 'rst-b2');
    const repo = await addRepository(w.stack.deps, { name: 'rst-b2', path, encryption: 'repokey-blake2' });
    const w2: RestoreWorld = { ...w, repo: { id: repo.id, name: repo.name, path } };
    const c = await addParty(w2, 'carol', { 'c.bin': { type: 'file', size: 700_000, seed: 'carol' }, 'd/e.txt': 'e\n'.repeat(500), 'd/l': { type: 'symlink', target: 'e.txt' } });
    const job = await prepareRestoreJob(w2, c, await backupOf(w2, c));
    expect((await findJobKey(w.stack.db.handle.db, job.jobId))?.keyType).toBe(0x06);
    await restoresIdentically(w2, c, job);
  });

  // Last: it takes the repository's index away (borg serve rebuilds it from the segments).
  it('without a readable repository index every object comes through borg serve, and the restore is the same', async () => {
    const index = readdirSync(w.repo.path).find((n) => /^index\.\d+$/.test(n))!;
    renameSync(join(w.repo.path, index), join(w.repo.path, `moved-${index}`));
    const log = join(w.stack.config.paths.logDir, 'storage.log');
    const before = readFileSync(log, 'utf8').split('repository index is not readable').length;
    await restoresIdentically(w, a, await prepareRestoreJob(w, a, aArchives[1]!));
    // Prepare and the session each found no index to read.
    expect(readFileSync(log, 'utf8').split('repository index is not readable').length - before).toBeGreaterThanOrEqual(2);
  });
});
