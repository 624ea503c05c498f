// Issue 20 point 3 end to end on the harness (real sshd client hosts, Temporal, PostgreSQL,
// Redis, borg, the proxy in restore mode): a tree with every kind of entry backed up, then
// restored into a new directory on the same client and on a second client (identical), a partial
// restore, an in-place restore that touches nothing outside its paths, one restore per target,
// bad input refused with one line and no job, and after every job nothing left on the client and
// a credential that opens nothing. These clients are unprivileged users: owners are checked as
// "the restoring account's"; restore-root.test.ts restores as root and checks the originals.
import { existsSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findClientByName, updateClient } from '../../db/queries/clients.js';
import type { Job } from '../../db/schema.js';
import { run } from '../../infra/subprocess.js';
import { listAuditEvents } from '../../db/queries/audit.js';
import { addClient } from '../../services/clients.js';
import { addUser } from '../../services/users.js';
import { createStackWebApp } from '../harness/web.js';
import { Browser, password } from '../integration/web-browser.js';
import { cancelJob, getJob, getJobDetails, listJobs } from '../../services/jobs.js';
import { startRestore, type StartRestoreInput } from '../../services/restores.js';
import { backup, describeJob, waitForJob } from '../harness/backup.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { stealCredential } from '../harness/stolen-credential.js';
import { describeRichTree, nonUtf8Name, withoutOwners, writeRichTree, type OwnerlessNode, type RichNode } from '../harness/rich-tree.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

const admin = { actor: 'test:admin', userId: null, role: 'admin' as const };
const operator = { actor: 'test:operator', userId: null, role: 'operator' as const };

/** The entries under `prefix/` (re-keyed below it), hard-link groups renamed to their first member there. */
function subtree(tree: Record<string, RichNode>, ...prefixes: string[]): Record<string, OwnerlessNode> {
  const picked = Object.entries(withoutOwners(tree)).filter(([k]) => prefixes.some((p) => k === p || k.startsWith(`${p}/`)));
  const first = new Map<string, string>();
  return Object.fromEntries(
    picked.map(([k, v]) => {
      if (v.linkGroup === undefined) return [k, v];
      if (!first.has(v.linkGroup)) first.set(v.linkGroup, k);
      return [k, { ...v, linkGroup: first.get(v.linkGroup) }];
    }),
  );
}

describe('the restore workflow', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let src: ClientHost;
  let other: ClientHost;
  let repo: string;
  let archive: string;
  let original: Record<string, RichNode>;
  /** The tree's path inside the archive (borg drops the leading slash). */
  let dataRel: string;

  /** After any job: no job folder on the client, and the stolen credential opens nothing. */
  async function expectJobGone(host: ClientHost, jobId: string, credential?: string) {
    expect(existsSync(host.path('.borgcube', 'jobs', jobId)), 'job folder left on the client').toBe(false);
    if (existsSync(host.path('.borgcube', 'jobs'))) expect(readdirSync(host.path('.borgcube', 'jobs'))).toEqual([]);
    if (credential) {
      expect(existsSync(credential), 'the credential was never seen on the client').toBe(true);
      const r = await run('ssh', ['-F', '/dev/null', '-i', credential, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-p', String(stack.sshd.port), `${stack.config.accounts.proxy}@127.0.0.1`, 'borg', 'serve'], { timeoutMs: 30_000, input: '' });
      // sshd lets a kept credential in only for a forced command that reports its reuse and ends.
      expect(r.code, 'the credential still opens the proxy').not.toBe(0);
      expect(r.stderr.toString()).toMatch(/no longer valid/);
    }
  }

  async function restore(host: ClientHost, input: Omit<StartRestoreInput, 'archive'>, expected: Job['state'] = 'succeeded'): Promise<Job> {
    const started = await startRestore(stack.deps, admin, { archive, ...input });
    const cred = stealCredential(host, started.id, stack.dataDir);
    const job = await waitForJob(stack, started.id);
    cred.stop();
    if (job.state !== expected) throw new Error(`restore ended ${job.state} (${job.error}), expected ${expected}\n${await describeJob(stack, job.id)}`);
    await expectJobGone(host, job.id, expected === 'succeeded' ? cred.path : undefined);
    return job;
  }

  const restoreCount = async () => (await listJobs(stack.deps, { kind: 'restore', limit: 500 })).jobs.length;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    src = await createClientHost({ authorizedKeys: [stack.serverPublicKey] });
    other = await createClientHost({ authorizedKeys: [stack.serverPublicKey] });
    await writeRichTree(src.path('data'), src);
    original = await describeRichTree(src.path('data'));
    dataRel = src.path('data').replace(/^\/+/, '');
    await addClient(stack.deps, { name: 'src', host: sshd.host, port: sshd.port, user: src.username, paths: [src.path('data')] });
    await addClient(stack.deps, { name: 'other', host: sshd.host, port: sshd.port, user: other.username, paths: [other.path('data')] });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    repo = 'r1';
    const done = await backup(stack, 'src', repo);
    archive = done.archiveName!;
  });
  afterAll(runCleanups);

  it('restores the whole archive into a new directory on the same client, identical', async () => {
    // The tree has what it should (so that "identical" compares something).
    expect(original['fifo']?.type).toBe('fifo');
    expect(original['plain.txt']?.xattrs).toEqual({ 'user.comment': `0x${Buffer.from('hello').toString('hex')}` });
    expect(original[`odd/hex:${nonUtf8Name.toString('hex')}`]?.type).toBe('file');
    expect(original['links/two']?.linkGroup).toBe(original['links/one']?.linkGroup);
    expect(original['links/dangling']).toMatchObject({ type: 'symlink', target: 'nowhere/at all' });
    expect(original['sparse.img']?.size).toBe(24 * 1024 * 1024 + 4);
    const job = await restore(src, {});
    const target = job.restore!.target;
    registerCleanup(`restore target ${target}`, () => rmSync(target, { recursive: true, force: true }));
    expect(target).toBe(`/var/tmp/borgcube-restore-${job.id}`);
    const restored = await describeRichTree(join(target, dataRel));
    expect(withoutOwners(restored)).toEqual(withoutOwners(original));
    expect(new Set(Object.values(restored).map((n) => n.uid))).toEqual(new Set([src.uid]));
    // The archive holds the backed-up folder itself too.
    expect(Number(job.stats?.items)).toBe(Object.keys(original).length + 1);
    expect(Number(job.stats?.nfiles)).toBe(Object.values(original).filter((n) => n.type === 'file').length);
    expect(Number(job.stats?.restoredBytes)).toBeGreaterThan(27 * 1024 * 1024);
    // The workflow asked for an authenticated job key and got one (proxy/storage/job-key.ts).
    const prepared = readFileSync(join(stack.config.paths.logDir, 'storage.log'), 'utf8').split('\n').find((l) => l.includes(job.id) && l.includes('restore prepared'));
    expect(prepared).toContain('"jobKey":"authenticated"');
  });

  it('restores onto a second client, identical, owned by that client account', async () => {
    const job = await restore(other, { client: 'other', target: other.path('restored') });
    const restored = await describeRichTree(other.path('restored', dataRel));
    expect(withoutOwners(restored)).toEqual(withoutOwners(original));
    expect(new Set(Object.values(restored).map((n) => n.uid))).toEqual(new Set([other.uid]));
    expect((await getJob(stack.deps, job.id)).clientName).toBe('other');
  });

  it("deploys the server's borg to a target client that has none, and removes it afterwards", async () => {
    await addClient(stack.deps, { name: 'other-noborg', host: sshd.host, port: sshd.port, user: other.username, paths: [other.path('data')], borgPath: '/opt/no-such-borg/borg' });
    const job = await restore(other, { client: 'other-noborg', target: other.path('deployed'), paths: [`${dataRel}/odd`] });
    expect(await describeJob(stack, job.id)).toMatch(/deployed borg 1\.2\.\d+/);
    expect(subtree(await describeRichTree(other.path('deployed', dataRel)), 'odd')).toEqual(subtree(original, 'odd'));
  });

  it('restores one folder and one file, and strips leading components when asked', async () => {
    await restore(other, { client: 'other', target: other.path('partial'), paths: [`/${dataRel}/links`, `${dataRel}/plain.txt`] });
    const restored = await describeRichTree(other.path('partial', dataRel));
    expect(subtree(restored, 'links', 'plain.txt')).toEqual(subtree(original, 'links', 'plain.txt'));
    expect(Object.keys(restored).filter((k) => !k.startsWith('links') && k !== 'plain.txt')).toEqual([]);

    // The CLI: --wait prints the job id, the target and how it ended.
    const cli = await stack.cli(['restore', archive, '--client', 'other', '--target', other.path('via-cli'), '--path', `${dataRel}/exec.sh`, '--wait']);
    expect(cli.code, cli.err).toBe(0);
    const [id, into, outcome] = cli.out.trim().split('\n');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(into).toBe(`restoring into ${other.path('via-cli')}`);
    expect(outcome).toBe('succeeded');
    expect(subtree(await describeRichTree(other.path('via-cli', dataRel)), 'exec.sh')).toEqual(subtree(original, 'exec.sh'));
    const usage = await stack.cli(['restore', archive, '--target', '/tmp/x', '--in-place']);
    expect(usage.code).not.toBe(0);
    expect(usage.err.trim()).toMatch(/^[^\n]*either --target or --in-place/);

    const depth = dataRel.split('/').length;
    await restore(other, { client: 'other', target: other.path('stripped'), paths: [`${dataRel}/odd`], stripComponents: depth });
    expect(subtree(await describeRichTree(other.path('stripped')), 'odd')).toEqual(subtree(original, 'odd'));
  });

  it('restores in place the archived versions of the selected paths and touches nothing else', async () => {
    writeFileSync(src.path('data', 'plain.txt'), 'changed since the backup\n');
    unlinkSync(src.path('data', 'links', 'two'));
    rmSync(src.path('data', 'deep'), { recursive: true });
    writeFileSync(src.path('data', 'exec.sh'), 'changed, outside the selection\n');
    writeFileSync(src.path('data', 'new-file'), 'made after the backup\n');
    const outside = await describeRichTree(src.path('data'));
    await restore(src, { inPlace: true, paths: [`${dataRel}/plain.txt`, `${dataRel}/deep`, `${dataRel}/links/two`] });
    const now = await describeRichTree(src.path('data'));
    expect(subtree(now, 'plain.txt', 'deep')).toEqual(subtree(original, 'plain.txt', 'deep'));
    // links/two is a name of the archived file again (its content, mode and times).
    expect({ ...now['links/two'], linkGroup: undefined, uid: 0, gid: 0 }).toEqual({ ...original['links/two'], linkGroup: undefined, uid: 0, gid: 0 });
    // Everything outside the selected paths is as it was before the restore, entry by entry; the
    // folders above a selected path only got a new mtime (an entry made in them).
    const selected = ['plain.txt', 'deep', 'links/two'];
    const unselected = (tree: typeof now) =>
      Object.fromEntries(
        Object.entries(tree)
          .filter(([k]) => !selected.some((p) => k === p || k.startsWith(`${p}/`)))
          .map(([k, n]) => [k, selected.some((p) => p.startsWith(`${k}/`)) ? { ...n, mtime: 'a parent of a selected path' } : n]),
      );
    expect(Object.keys(unselected(outside)).length).toBeGreaterThan(10);
    expect(unselected(now)).toEqual(unselected(outside));
  });

  it('starts a restore through POST /api/v1/restores (operator or admin), documented, and shows it on the job page', async () => {
    const { app, hub } = createStackWebApp(stack);
    await addUser(stack.deps, { username: 'op', role: 'operator', password });
    await addUser(stack.deps, { username: 'viewer', role: 'viewer', password });
    const op = new Browser(app);
    const viewer = new Browser(app);
    expect((await op.login('op')).status).toBe(303);
    expect((await viewer.login('viewer')).status).toBe(303);
    const body = { archive, client: 'other', target: other.path('via-api'), paths: [`${dataRel}/plain.txt`] };
    expect((await viewer.api('POST', '/api/v1/restores', body)).status).toBe(403);
    const bad = await op.api('POST', '/api/v1/restores', { ...body, target: 'relative' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toMatch(/absolute path/);
    const res = await op.api('POST', '/api/v1/restores', body);
    expect(res.status).toBe(201);
    const started = (await res.json()) as Job;
    // Live progress, as the console and `job logs --follow` get it: bytes of borg extract's total.
    const progress: Array<{ originalSize: number; totalSize?: number }> = [];
    const unsubscribe = await hub.subscribe(started.id, (e) => void (e.type === 'progress' && progress.push(e)));
    expect(started).toMatchObject({ kind: 'restore', archiveName: null, restore: { archiveName: archive, target: other.path('via-api'), paths: [`${dataRel}/plain.txt`], inPlace: false } });
    const done = await waitForJob(stack, started.id);
    expect(done.state, await describeJob(stack, done.id)).toBe('succeeded');
    unsubscribe();
    expect(progress.at(-1)).toMatchObject({ totalSize: original['plain.txt']!.size, originalSize: original['plain.txt']!.size });
    expect(subtree(await describeRichTree(other.path('via-api', dataRel)), 'plain.txt')).toEqual(subtree(original, 'plain.txt'));
    const page = await (await op.get(`/jobs/${started.id}`)).text();
    expect(page).toContain(other.path('via-api'));
    expect(page).toMatch(/<dt>Restored<\/dt>/);
    expect(page).toContain(archive);
    const doc = (await (await app.request('/api/v1/openapi.json')).json()) as { paths: Record<string, Record<string, { 'x-required-role'?: string }>> };
    expect(doc.paths['/restores']?.post?.['x-required-role']).toBe('operator');
    const audit = await listAuditEvents(stack.deps.db);
    expect(audit.find((e) => e.action === 'restore.start' && e.detail?.job === started.id)).toMatchObject({ actor: 'web:op', target: archive, detail: { client: 'other', target: other.path('via-api') } });
  });

  it('refuses bad input with one line and starts no job', async () => {
    const before = await restoreCount();
    const cases: Array<[StartRestoreInput, RegExp]> = [
      [{ archive: 'no-such-archive' }, /archive "no-such-archive" does not exist/],
      [{ archive, client: 'no-such-client' }, /client "no-such-client" does not exist/],
      [{ archive, target: 'relative/dir' }, /target: must be an absolute path/],
      [{ archive, target: '/tmp/x', inPlace: true }, /either a target directory or in place/],
      [{ archive, paths: ['a/../b'] }, /must not contain "\.\."/],
      [{ archive, stripComponents: -1 }, /stripComponents/],
    ];
    for (const [input, msg] of cases) {
      const err = await startRestore(stack.deps, admin, input).then(() => undefined, (e: Error) => e);
      expect(err?.message, JSON.stringify(input)).toMatch(msg);
      expect(err?.message.includes('\n')).toBe(false);
    }
    const cli = await stack.cli(['restore', archive, '--target', 'relative']);
    expect(cli.code).not.toBe(0);
    expect(cli.err.trim().split('\n')).toHaveLength(1);
    expect(cli.err).toMatch(/absolute path/);
    // Repository dedup scope: the archive may reference other tenants' chunks; operators may not restore it.
    const c = (await findClientByName(stack.deps.db, 'src'))!;
    await updateClient(stack.deps.db, c.id, { dedupScope: 'repository' });
    try {
      await expect(startRestore(stack.deps, operator, { archive })).rejects.toThrow(/only an admin may restore it/);
    } finally {
      await updateClient(stack.deps.db, c.id, { dedupScope: 'client' });
    }
    expect(await restoreCount()).toBe(before);
  });

  it('fails a job with one clear line, touching nothing, for a target that is a file or not writable and a path not in the archive', async () => {
    const file = await restore(other, { client: 'other', target: other.path('.ssh', 'authorized_keys') }, 'failed');
    expect(file.error).toMatch(/restore target ".*authorized_keys" on client other exists and is not a directory/);
    const denied = await restore(other, { client: 'other', target: '/root/borgcube-restore-test' }, 'failed');
    expect(denied.error).toMatch(/cannot (create|write into) the restore target/);
    expect(existsSync('/root/borgcube-restore-test')).toBe(false);
    const ours = await restore(other, { client: 'other', target: other.path('.borgcube', 'here') }, 'failed');
    expect(ours.error).toMatch(/is inside BorgCube's job folders$/);
    const missing = await restore(other, { client: 'other', target: other.path('missing'), paths: [`${dataRel}/no/such/path`] }, 'failed');
    expect(missing.error).toMatch(/is not in archive/);
    expect(existsSync(other.path('missing')), 'the target of a refused selection was made').toBe(false);
    for (const j of [file, denied, ours, missing]) expect(j.error!.includes('\n'), j.error!).toBe(false);
    expect(existsSync(other.path('.borgcube', 'jobs')) ? readdirSync(other.path('.borgcube', 'jobs')) : []).toEqual([]);
  });

  /** A client `gated` (the src account) whose `borg extract` waits while ~/hold exists. */
  let gated: { hold(): void; release(): void } | undefined;
  async function gatedClient() {
    if (gated) return gated;
    const holdFile = src.path('hold');
    src.writeTree({ 'gated-borg': { type: 'file', mode: 0o755, content: ['#!/bin/sh', `if [ "$1" = "extract" ]; then while [ -e ${holdFile} ]; do sleep 0.1; done; fi`, 'exec borg "$@"', ''].join('\n') } });
    await addClient(stack.deps, { name: 'gated', host: sshd.host, port: sshd.port, user: src.username, paths: [src.path('data')], borgPath: src.path('gated-borg') });
    gated = { hold: () => src.writeTree({ hold: '' }), release: () => rmSync(holdFile, { force: true }) };
    return gated;
  }

  async function untilPhaseRun(id: string) {
    for (let i = 0; (await getJob(stack.deps, id)).phase !== 'run'; i++) {
      if (i > 600) throw new Error(`the restore never ran\n${await describeJob(stack, id)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('survives a worker killed with SIGKILL mid-restore; job logs --follow and job show show it', async () => {
    const gate = await gatedClient();
    gate.hold();
    // Restored by the src account: a folder of its own.
    const job = await startRestore(stack.deps, admin, { archive, client: 'gated', target: src.path('after-sigkill') });
    const follow = stack.cli(['job', 'logs', job.id, '--follow'], { timeoutMs: 300_000 });
    await untilPhaseRun(job.id);
    await new Promise((r) => setTimeout(r, 1000));
    await stack.worker.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await stack.worker.start();
    // The retry (after the heartbeat timeout) finds the held borg extract still running.
    for (let i = 0; !(await describeJob(stack, job.id)).includes('worker restarted: following the borg extract that is still running on the client'); i++) {
      if (i > 900) throw new Error(`the restarted worker never re-attached\n${await describeJob(stack, job.id)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    gate.release();
    const done = await waitForJob(stack, job.id, 300_000);
    expect(done.state, await describeJob(stack, job.id)).toBe('succeeded');
    expect(await describeJob(stack, job.id)).not.toMatch(/borg extract restarted/);
    expect(withoutOwners(await describeRichTree(src.path('after-sigkill', dataRel)))).toEqual(withoutOwners(original));
    await expectJobGone(src, job.id);
    const followed = await follow;
    expect(followed.code, followed.err).toBe(0);
    expect(followed.out).toMatch(/borg extract started on the client/);
    expect(followed.out).toMatch(/ PROGRESS (\d+ items, )?\d+ of \d+ bytes restored \(\d+\.\d%\); at /);
    // Restored into a new folder: counted there, not listed path by path.
    expect(followed.out).toMatch(/restored \d+ items: \d+ files, links and other non-directories and \d+ directories are in .*after-sigkill/);
    expect(followed.out).toMatch(/job succeeded/);
    const show = await stack.cli(['job', 'show', job.id]);
    expect(show.out).toMatch(new RegExp(`archive +${archive}`));
    expect(show.out).toMatch(/restore target +.*after-sigkill/);
    expect(show.out).toMatch(/restoredBytes +\d+/);
  });

  it('runs one restore per target of a client at a time, and a cancelled restore cleans up', async () => {
    const gate = await gatedClient();
    gate.hold();
    const target = src.path('gated-target');
    const first = await startRestore(stack.deps, admin, { archive, client: 'gated', target });
    const cred = stealCredential(src, first.id, stack.dataDir);
    await expect(startRestore(stack.deps, admin, { archive, client: 'gated', target: `${target}/` })).rejects.toThrow(/a restore into .*gated-target on client gated is already running/);
    await untilPhaseRun(first.id);
    await cancelJob(stack.deps, first.id);
    const done = await waitForJob(stack, first.id);
    cred.stop();
    expect(done.state).toBe('cancelled');
    await expectJobGone(src, first.id, cred.path);
    // Stopped on the client, not just given up on: nothing of the held borg extract runs on.
    const ps = await run('pgrep', ['-u', String(src.uid), '-f', 'borg extract'], { timeoutMs: 10_000 });
    expect(ps.stdout.toString().trim(), 'borg extract still runs after the cancel').toBe('');
    gate.release();
  });

  it('ends a restore whose workflow was terminated and cleans up after it', async () => {
    const gate = await gatedClient();
    gate.hold();
    try {
      const job = await startRestore(stack.deps, admin, { archive, client: 'gated', target: src.path('orphaned') });
      await untilPhaseRun(job.id);
      await stack.temporal.workflow.getHandle(job.id).terminate('an admin gave up on it');
      expect(await cancelJob(stack.deps, job.id)).toBe('ended');
      const r = (await stack.temporal.workflow.getHandle(`cleanup-${job.id}`).result()) as { clientError?: string };
      expect(r.clientError).toBeUndefined();
      expect((await getJob(stack.deps, job.id)).state).toBe('failed');
      await expectJobGone(src, job.id);
      const ps = await run('pgrep', ['-u', String(src.uid), '-f', 'borg extract'], { timeoutMs: 10_000 });
      expect(ps.stdout.toString().trim()).toBe('');
    } finally {
      gate.release();
    }
  });

  it('ends a restore whose client writes in violation, records it, and still cleans up', async () => {
    // A "borg" that, asked to extract, tries to create an archive through the restore's session.
    src.writeTree({
      'writing-borg': {
        type: 'file',
        mode: 0o755,
        content: ['#!/bin/sh', 'if [ "$1" = "extract" ]; then', '  for a in "$@"; do case "$a" in ssh://*) loc="$a" ;; esac; done', '  exec borg create --log-json "${loc%%::*}::evil" /etc/hostname', 'fi', 'exec borg "$@"', ''].join('\n'),
      },
    });
    await addClient(stack.deps, { name: 'writing', host: sshd.host, port: sshd.port, user: src.username, paths: [src.path('data')], borgPath: src.path('writing-borg') });
    const job = await restore(src, { client: 'writing', target: src.path('violated') }, 'violation');
    expect(job.error).toMatch(/^violation: /);
    expect((await getJobDetails(stack.deps, job.id)).violations.length).toBeGreaterThan(0);
    expect(existsSync(src.path('.borgcube'))).toBe(false);
  });
});
