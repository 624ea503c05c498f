// Issue 6 acceptance, prune: on a repository holding archives of two clients named `web` and
// `web-2` with times the test sets (written through the admin path with `borg create --timestamp`,
// so the manifest entries carry them, as the repository service's stamps do), a policy's scheduled
// backup is followed by a prune that keeps exactly what the rules say — hand-computed below from
// borg 1.2's prune_split — and touches no archive of the other client; the archives table and the
// repository's figures follow. A name the client's pattern cannot tell apart stops the prune.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { and, eq, isNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeJob, insertJob } from '../../db/queries/jobs.js';
import { archivesTable, repositoriesTable } from '../../db/schema.js';
import { addClient, getClient } from '../../services/clients.js';
import { jobLogTail } from '../../services/jobs.js';
import { getRepository } from '../../services/repositories.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { cleanUpSchedules, expectJobEnds, waitForPolicyIdle, waitForPolicyJob } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

/** Archives of `web` with server-stamped times (UTC); the comments give borg's verdict. */
const webArchives: Array<[string, string, 'keep' | 'prune']> = [
  ['web-2024-03-10T13-00-00.checkpoint', '2024-03-10T13:00:00', 'prune'], // a checkpoint older than a finished archive
  ['web-2024-03-10T12-00-00', '2024-03-10T12:00:00', 'keep'], // daily #2 (the new backup is daily #1)
  ['web-2024-03-10T06-00-00', '2024-03-10T06:00:00', 'prune'], // same day as the one above
  ['web-2024-03-09T12-00-00', '2024-03-09T12:00:00', 'keep'], // daily #3
  ['web-2024-03-08T12-00-00', '2024-03-08T12:00:00', 'prune'], // ISO week 10 already has a kept archive
  ['web-2024-03-07T12-00-00', '2024-03-07T12:00:00', 'prune'], // ISO week 10 again
  ['web-2024-03-03T12-00-00', '2024-03-03T12:00:00', 'keep'], // weekly #1 (week 9)
  ['web-2024-02-25T12-00-00', '2024-02-25T12:00:00', 'keep'], // weekly #2 (week 8)
  ['web-2024-02-15T12-00-00', '2024-02-15T12:00:00', 'prune'], // February already has a kept archive
  ['web-2024-01-20T12-00-00', '2024-01-20T12:00:00', 'keep'], // monthly #1 (2024-01)
  ['web-2023-12-31T12-00-00', '2023-12-31T12:00:00', 'keep'], // monthly #2 (2023-12)
];

/** Archives of `web-2`: its name starts with `web-`, and its times overlap web's. */
const web2Archives: Array<[string, string, 'keep' | 'prune']> = [
  ['web-2-2024-03-10T12-00-00', '2024-03-10T12:00:00', 'keep'], // monthly #1 (2024-03)
  ['web-2-2024-03-08T12-00-00', '2024-03-08T12:00:00', 'prune'],
  ['web-2-2024-01-20T12-00-00', '2024-01-20T12:00:00', 'keep'], // monthly #2 (2024-01)
  ['web-2-2023-12-31T12-00-00', '2023-12-31T12:00:00', 'prune'],
];

describe('prune', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let src: string;

  const cli = (args: string[], expectCode = 0) => expectCli(stack, args, expectCode);

  /** Archives with chosen times, written with the real key through `borgcube borg`, and their rows. */
  async function makeArchives(client: string, archives: Array<[string, string, unknown]>) {
    for (const [name, time] of archives) await cli(['borg', 'r1', '--', 'create', '--timestamp', time, `::${name}`, src]);
    const listed = JSON.parse((await cli(['borg', 'r1', '--', 'list', '--json', '--consider-checkpoints'])).out) as { archives: Array<{ name: string; id: string; time: string }> };
    const repo = await getRepository(stack.deps, 'r1');
    const clientId = (await getClient(stack.deps, client)).id;
    for (const [name, time] of archives) {
      const a = listed.archives.find((x) => x.name === name)!;
      // The manifest holds the time given to --timestamp: that is what prune will judge.
      expect(a.time).toBe(`${time}.000000`);
      await stack.db.handle.db.insert(archivesTable).values({ repositoryId: repo.id, borgId: a.id, name, clientId, time: new Date(`${time}Z`) });
    }
  }

  async function liveRows(client: string): Promise<string[]> {
    const c = await getClient(stack.deps, client);
    const rows = await stack.db.handle.db.select({ name: archivesTable.name }).from(archivesTable).where(and(eq(archivesTable.clientId, c.id), isNull(archivesTable.deletedAt)));
    return rows.map((r) => r.name).sort();
  }

  /** Every archive in the repository, checkpoints included. */
  async function archiveNames(_stack: TestStack, repo: string): Promise<string[]> {
    return (await cli(['borg', repo, '--', 'list', '--short', '--consider-checkpoints'])).out.split('\n').filter(Boolean);
  }

  const names = (list: Array<[string, string, 'keep' | 'prune']>, verdict?: 'keep' | 'prune') => list.filter(([, , v]) => !verdict || v === verdict).map(([n]) => n);

  beforeAll(async () => {
    stack = await startStack();
    cleanUpSchedules(stack);
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n' } });
    await cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    await addClient(stack.deps, { name: 'web-2', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')] });
    src = join(stack.dataDir, 'archive-source');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'file.txt'), 'the same small file in every archive\n');
    await makeArchives('web', webArchives);
    await makeArchives('web-2', web2Archives);
  });
  afterAll(runCleanups);

  it('after a scheduled backup, keeps exactly what the rules say and leaves web-2 alone', async () => {
    await cli(['policy', 'add', 'web-keep', '--client', 'web', '--repo', 'r1', '--keep-daily', '3', '--keep-weekly', '2', '--keep-monthly', '3']);
    await cli(['policy', 'trigger', 'web-keep']);
    const backup = await expectJobEnds(stack, (await waitForPolicyJob(stack, 'web-keep', 'backup', 0, 30_000)).id, 'succeeded');
    const prune = await expectJobEnds(stack, (await waitForPolicyJob(stack, 'web-keep', 'prune', 0, 60_000)).id, 'succeeded');
    await waitForPolicyIdle(stack, 'web-keep');

    const expectedWeb = [backup.archiveName!, ...names(webArchives, 'keep')].sort();
    const inRepo = await archiveNames(stack, 'r1');
    expect(inRepo.filter((n) => !n.startsWith('web-2-')).sort()).toEqual(expectedWeb);
    expect(inRepo.filter((n) => n.startsWith('web-2-')).sort()).toEqual(names(web2Archives).sort());

    // What it deleted: in the job's stats and log, and as deleted rows in the archives table.
    expect(prune.stats).toMatchObject({ pruned: names(webArchives, 'prune').length, kept: expectedWeb.length });
    const log = (await jobLogTail(stack.deps, prune.id, 500)).map((l) => l.message);
    for (const n of names(webArchives, 'prune')) expect(log.some((m) => m.startsWith('Pruning archive') && m.includes(` ${n} `))).toBe(true);
    expect(await liveRows('web')).toEqual(expectedWeb);
    expect(await liveRows('web-2')).toEqual(names(web2Archives).sort());
    const repo = (await stack.db.handle.db.select().from(repositoriesTable).where(eq(repositoriesTable.name, 'r1')))[0]!;
    expect(repo.stats?.archives).toBe(expectedWeb.length + web2Archives.length);
    await cli(['borg', 'r1', '--', 'check']);
  });

  it('prunes nothing while a running restore reads an archive the rules would take', async () => {
    await cli(['policy', 'add', 'web2-keep', '--client', 'web-2', '--repo', 'r1', '--keep-monthly', '2']);
    const before = (await archiveNames(stack, 'r1')).sort();
    const listed = JSON.parse((await cli(['borg', 'r1', '--', 'list', '--json'])).out) as { archives: Array<{ name: string; id: string }> };
    const restored = listed.archives.find((a) => a.name === 'web-2-2024-03-08T12-00-00')!;
    const repo = await getRepository(stack.deps, 'r1');
    const web2 = await getClient(stack.deps, 'web-2');
    // A restore job in its run phase, as the restore workflow leaves the row while borg extract reads.
    const restoreJob = await insertJob(stack.db.handle.db, {
      id: randomUUID(),
      kind: 'restore',
      clientId: web2.id,
      repositoryId: repo.id,
      phase: 'run',
      restore: { archiveId: randomUUID(), archiveBorgId: restored.id, archiveName: restored.name, sourceClientId: web2.id, paths: [], target: '/var/tmp/x', inPlace: false, stripComponents: 0 },
    });
    try {
      const r = await cli(['policy', 'prune', 'web2-keep', '--wait']);
      expect(r.out).toMatch(/succeeded/);
      expect((await archiveNames(stack, 'r1')).sort()).toEqual(before);
      const prune = (await waitForPolicyJob(stack, 'web2-keep', 'prune', 0, 10_000)).id;
      const log = (await jobLogTail(stack.deps, prune, 200)).map((l) => l.message);
      expect(log).toContain(`nothing pruned this time: archive web-2-2024-03-08T12-00-00 is being restored by job ${restoreJob.id}; the next prune applies the rules`);
    } finally {
      await completeJob(stack.db.handle.db, restoreJob.id, 'succeeded', null, null);
    }
  });

  it('web-2’s own prune keeps what its rules say and touches no archive of web', async () => {
    const webBefore = (await archiveNames(stack, 'r1')).filter((n) => !n.startsWith('web-2-')).sort();
    const r = await cli(['policy', 'prune', 'web2-keep', '--wait']);
    expect(r.out).toMatch(/succeeded/);
    const inRepo = await archiveNames(stack, 'r1');
    expect(inRepo.filter((n) => n.startsWith('web-2-')).sort()).toEqual(names(web2Archives, 'keep').sort());
    expect(inRepo.filter((n) => !n.startsWith('web-2-')).sort()).toEqual(webBefore);
    expect(await liveRows('web-2')).toEqual(names(web2Archives, 'keep').sort());
    expect(await liveRows('web')).toEqual(webBefore);
  });

  it('refuses to prune when the client’s pattern also selects a name that is not its own', async () => {
    // A client may be named like a timestamped archive; its names then match `web`'s glob.
    const odd = 'web-2024-01-01T00-00-00-2024-02-02T00-00-00';
    await cli(['borg', 'r1', '--', 'create', '--timestamp', '2020-01-01T00:00:00', `::${odd}`, src]);
    const before = (await archiveNames(stack, 'r1')).sort();
    const r = await cli(['policy', 'prune', 'web-keep', '--wait'], 1);
    expect(r.out).toMatch(/failed: the archive pattern of client web also selects "web-2024-01-01T00-00-00-2024-02-02T00-00-00"/);
    expect((await archiveNames(stack, 'r1')).sort()).toEqual(before);
  });
});
