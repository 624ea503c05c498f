// Issue 20 point 1, owners: a client whose SSH user is root (the harness's client sshd with
// rootKeys) backs up a tree whose entries belong to several users and groups — two test accounts,
// root, and numeric ids no account has — with setuid, setgid and sticky modes, then restores it
// into a new directory on itself: owners and groups (numeric), modes, mtimes, xattrs and
// hard-link groups come back identical. Restored onto an unprivileged client instead, borg's
// chown fails (it ignores that) and everything belongs to the restoring account, with every other
// attribute — the setuid/setgid/sticky bits too — unchanged. The job folder of a root client
// lives in /root/.borgcube/jobs/<job id>; after each job nothing of it is left in /root.
import { chmodSync, existsSync, lchownSync, linkSync, lutimesSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from '../../db/schema.js';
import { run } from '../../infra/subprocess.js';
import { startBackup } from '../../services/jobs.js';
import { addClient } from '../../services/clients.js';
import { startRestore, type StartRestoreInput } from '../../services/restores.js';
import { describeJob, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { describeRichTree, withoutOwners, writeRichTree, type RichNode } from '../harness/rich-tree.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { makeTaggedDir } from '../harness/tags.js';

const admin = { actor: 'test:admin', userId: null, role: 'admin' as const };
/** Ids no account or group on this host has (checked in beforeAll). */
const loneUid = 54321;
const loneGid = 54322;
const rootJobs = '/root/.borgcube/jobs';

/** Adds `owners/` to the tree at `base`: entries of several owners and groups, and special modes. */
function writeOwnersTree(base: string, a: ClientHost, b: ClientHost): void {
  const mtime = new Date('2022-03-04T05:06:07.891Z');
  const at = (rel: string) => join(base, 'owners', rel);
  // chown clears setuid/setgid on files: owner first, then mode, then time.
  const own = (rel: string, uid: number, gid: number, mode?: number) => {
    lchownSync(at(rel), uid, gid);
    if (mode !== undefined) chmodSync(at(rel), mode);
    if (rel) lutimesSync(at(rel), mtime, mtime);
  };
  mkdirSync(at('shared'), { recursive: true });
  for (const [rel, content] of [['by-a', 'a\n'], ['b-in-a-group', 'b\n'], ['lone-ids', 'lone\n'], ['setuid', '#!/bin/sh\n'], ['setgid', '#!/bin/sh\n'], ['shared/inside', 'in\n'], ['hl-1', 'linked\n']] as const) writeFileSync(at(rel), content);
  linkSync(at('hl-1'), at('hl-2'));
  symlinkSync('by-a', at('link-a'));
  own('by-a', a.uid, a.gid, 0o644);
  own('b-in-a-group', b.uid, a.gid, 0o640);
  own('lone-ids', loneUid, loneGid, 0o600);
  own('setuid', 0, b.gid, 0o4755);
  own('setgid', a.uid, a.gid, 0o2750);
  own('shared/inside', loneUid, a.gid, 0o664);
  own('hl-1', b.uid, b.gid, 0o660);
  own('link-a', a.uid, loneGid);
  own('shared', a.uid, loneGid, 0o3775);
  own('', 0, b.gid, 0o755);
  utimesSync(at(''), mtime, mtime);
}

/** Top-level names in /root, and the job folder seen there while the job ran. */
async function watchRootHome<T>(jobId: () => string | undefined, body: () => Promise<T>): Promise<{ result: T; seen: boolean; before: string[] }> {
  const before = readdirSync('/root').sort();
  let seen = false;
  const timer = setInterval(() => {
    const id = jobId();
    if (id && existsSync(join(rootJobs, id))) seen = true;
  }, 50);
  try {
    return { result: await body(), seen, before };
  } finally {
    clearInterval(timer);
  }
}

describe('a restore onto a client logged in as root', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let a: ClientHost;
  let b: ClientHost;
  let other: ClientHost;
  let work: string;
  let archive: string;
  let original: Record<string, RichNode>;
  let dataRel: string;

  /** Runs a job of the root client and checks /root holds nothing of it afterwards. */
  async function rootJob(start: () => Promise<{ id: string }>): Promise<Job> {
    let id: string | undefined;
    const { result: job, seen, before } = await watchRootHome(
      () => id,
      async () => {
        id = (await start()).id;
        return waitForJob(stack, id);
      },
    );
    if (job.state !== 'succeeded') throw new Error(`job ended ${job.state} (${job.error})\n${await describeJob(stack, job.id)}`);
    expect(seen, 'the job folder was in /root/.borgcube/jobs while the job ran').toBe(true);
    expect(existsSync(join(rootJobs, job.id)), 'job folder left in /root').toBe(false);
    // The folders above it go too, unless something else (another job) still uses them.
    if (!before.includes('.borgcube')) expect(existsSync('/root/.borgcube'), '/root/.borgcube left behind').toBe(false);
    expect(readdirSync('/root').sort()).toEqual(before);
    return job;
  }

  beforeAll(async () => {
    for (const [db, id] of [['passwd', loneUid], ['group', loneGid]] as const) {
      const r = await run('getent', [db, String(id)], { timeoutMs: 10_000 });
      if (r.code === 0) throw new Error(`${db} id ${id} exists on this host: the test needs an id nobody has`);
    }
    stack = await startStack();
    sshd = await startClientSshd({ rootKeys: [stack.serverPublicKey] });
    a = await createClientHost();
    b = await createClientHost();
    other = await createClientHost({ authorizedKeys: [stack.serverPublicKey] });
    work = makeTaggedDir('restore-root');
    registerCleanup(`root client's tree ${work}`, () => rmSync(work, { recursive: true, force: true }));
    const data = join(work, 'data');
    await writeRichTree(data, { uid: 0, gid: 0 });
    writeOwnersTree(data, a, b);
    original = await describeRichTree(data);
    dataRel = data.replace(/^\/+/, '');
    await addClient(stack.deps, { name: 'rootsrc', host: sshd.host, port: sshd.port, user: 'root', paths: [data] });
    await addClient(stack.deps, { name: 'other', host: sshd.host, port: sshd.port, user: other.username, paths: [other.path('data')] });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    const done = await rootJob(() => startBackup(stack.deps, { client: 'rootsrc', repository: 'r1', triggeredBy: 'test' }));
    archive = done.archiveName!;
  });
  afterAll(runCleanups);

  it('keeps owners, groups, modes, mtimes, xattrs and hard links when restoring as root', async () => {
    // The tree has what it should, so that "identical" compares something.
    const o = (rel: string) => original[`owners/${rel}`]!;
    expect(new Set(Object.values(original).map((n) => n.uid))).toEqual(new Set([0, a.uid, b.uid, loneUid]));
    expect(new Set(Object.values(original).map((n) => n.gid))).toEqual(new Set([0, a.gid, b.gid, loneGid]));
    expect(o('setuid')).toMatchObject({ mode: 0o4755, uid: 0, gid: b.gid });
    expect(o('setgid')).toMatchObject({ mode: 0o2750, uid: a.uid, gid: a.gid });
    expect(o('shared')).toMatchObject({ type: 'dir', mode: 0o3775, uid: a.uid, gid: loneGid });
    expect(o('link-a')).toMatchObject({ type: 'symlink', uid: a.uid, gid: loneGid });
    expect(o('hl-2')).toMatchObject({ linkGroup: 'owners/hl-1', uid: b.uid, mode: 0o660 });
    expect(original['plain.txt']?.xattrs).toEqual({ 'user.comment': `0x${Buffer.from('hello').toString('hex')}` });
    expect(original['fifo']?.type).toBe('fifo');

    const target = join(work, 'restored');
    const input: StartRestoreInput = { archive, client: 'rootsrc', target };
    await rootJob(() => startRestore(stack.deps, admin, input));
    expect(await describeRichTree(join(target, dataRel))).toEqual(original);
    expect(sshd.log, 'BorgCube logged in as root').toMatch(/Accepted publickey for root from 127\.0\.0\.1/);
  });

  it('keeps owners too on a second client logged in as root (a replacement host, its own sshd)', async () => {
    const second = await startClientSshd({ rootKeys: [stack.serverPublicKey] });
    registerCleanup('second root sshd', () => second.stop());
    await addClient(stack.deps, { name: 'rootdst', host: second.host, port: second.port, user: 'root', paths: [join(work, 'nothing-to-back-up')] });
    const target = join(work, 'on-the-second-host');
    await rootJob(() => startRestore(stack.deps, admin, { archive, client: 'rootdst', target }));
    expect(await describeRichTree(join(target, dataRel))).toEqual(original);
    expect(second.log, 'BorgCube logged in to the second host as root').toMatch(/Accepted publickey for root from 127\.0\.0\.1/);
  });

  it('restores onto an unprivileged client: the same tree, everything owned by the restoring account', async () => {
    const started = await startRestore(stack.deps, admin, { archive, client: 'other', target: other.path('restored') });
    const job = await waitForJob(stack, started.id);
    expect(job.state, await describeJob(stack, job.id)).toBe('succeeded');
    const restored = await describeRichTree(other.path('restored', dataRel));
    // borg ignores the failing chown; the modes (setuid/setgid/sticky too) apply to the account's own files.
    expect(withoutOwners(restored)).toEqual(withoutOwners(original));
    expect(new Set(Object.values(restored).map((n) => `${n.uid}:${n.gid}`))).toEqual(new Set([`${other.uid}:${other.gid}`]));
    expect(restored['owners/setuid']?.mode).toBe(0o4755);
    expect(restored['owners/shared']?.mode).toBe(0o3775);
    expect(existsSync(other.path('.borgcube'))).toBe(false);
  });
});
