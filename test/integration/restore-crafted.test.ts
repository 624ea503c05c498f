// Issue 20 point 4 through the real path: a hostile client's archive whose items would land
// outside the restore target is not restored onto another client. The client `mallory` runs
// test/fixtures/evil-borg.py (mode `crafted-items`): a backup job that succeeds with an archive
// holding paths borg create never writes — `a/../../…`, a file below the archive's own symlink,
// an absolute path. An operator then restores it onto the client `victim` into the default
// target; prepareRestore (proxy/storage/restore-safety.ts) must refuse it before anything
// reaches the victim. The escape destinations are in a folder of the victim's own, so the
// victim's borg could really write there: a control extract with stock borg 1.2.4 (the admin's
// `borgcube borg`) shows that it does for the first two, which borg itself does not refuse.
import { existsSync, lstatSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listJobCredentials } from '../../db/queries/job-credentials.js';
import { addClient } from '../../services/clients.js';
import { defaultRestoreTarget, startRestore } from '../../services/restores.js';
import { describeJob, waitForJob } from '../harness/backup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, describeTree, type ClientHost } from '../harness/client-host.js';
import { startClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { tempDir } from '../harness/temp-dir.js';
import { installEvilBorg, runAttack, type Party } from '../fixtures/adversarial.js';

const operator = { actor: 'test:operator', userId: null, role: 'operator' as const };

/** One item as evil-borg.py's `crafted-items` writes it. */
interface CraftedItem {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  target?: string;
}

/** What the archive holds and what must come of it; paths name the victim's home, known once it exists. */
interface Case {
  items: CraftedItem[];
  /** The reason prepareRestore gives, naming the unsafe item. */
  reason: string;
  /** Where the item would land on the victim if restored. */
  escape: string;
  /** Whether stock borg 1.2.4 extract writes it (it refuses only paths starting with '/' or '../'). */
  borgWrites: boolean;
}

const neverWritten = 'which borg create never writes (empty, absolute, "." or ".." components)';

const cases: Array<[string, (victim: ClientHost) => Case]> = [
  [
    "a path with '..' components",
    (victim) => {
      // Enough '..' to reach '/' from any target (extra ones stay at '/'), then the victim's folder.
      const path = `a/${'../'.repeat(12)}${victim.path('escape', 'dotdot.txt').slice(1)}`;
      return {
        items: [{ path: 'a', type: 'dir' }, { path, type: 'file' }],
        reason: `the archive holds the path ${JSON.stringify(path)}, ${neverWritten}`,
        escape: victim.path('escape', 'dotdot.txt'),
        borgWrites: true,
      };
    },
  ],
  [
    "a file below the archive's own symlink to a folder outside",
    (victim) => ({
      items: [
        { path: 'd', type: 'dir' },
        { path: 'd/link', type: 'symlink', target: victim.path('escape') },
        { path: 'd/link/planted.txt', type: 'file' },
      ],
      reason: 'the archive holds "d/link/planted.txt" below its own symlink "d/link"',
      escape: victim.path('escape', 'planted.txt'),
      borgWrites: true,
    }),
  ],
  [
    'an absolute path',
    (victim) => {
      const path = victim.path('escape', 'absolute.txt');
      return { items: [{ path, type: 'file' }], reason: `the archive holds the path ${JSON.stringify(path)}, ${neverWritten}`, escape: path, borgWrites: false };
    },
  ],
];

describe('an archive crafted to escape the restore target', () => {
  let stack: TestStack;
  let mallory: Party;
  let victim: ClientHost;
  const repo = 'crafted';

  beforeAll(async () => {
    stack = await startStack();
    const sshd = await startClientSshd();
    const r = await stack.cli(['repo', 'add', repo, '--path', `${stack.dataDir}-repos/${repo}`]);
    expect(r.code, r.err).toBe(0);
    const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/x': 'x\n' } });
    mallory = { client: 'mallory', host, evilPath: installEvilBorg(host) };
    await addClient(stack.deps, { name: 'mallory', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: mallory.evilPath });
    // `escape` is the victim's own folder: a write through the symlink would succeed there.
    victim = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/y': 'y\n', 'escape/keep.txt': "the victim's own file\n" } });
    await addClient(stack.deps, { name: 'victim', host: sshd.host, port: sshd.port, user: victim.username, paths: [victim.path('data')] });
  }, 300_000);
  afterAll(runCleanups);

  it.each(cases)('refuses %s and writes nothing on the target client', async (_name, build) => {
    const c = build(victim);
    const attack = await runAttack({ stack, repo, earlier: [], timings: [] }, mallory, 'crafted-items', { items: c.items });
    expect(attack.job.state, `${attack.job.error}\n${JSON.stringify(attack.result?.steps.map((s) => s.what))}\n${await describeJob(stack, attack.job.id)}`).toBe('succeeded');
    const archive = attack.job.archiveName!;
    // The repository holds the items as the client wrote them (the admin's view, real key).
    const listed = await stack.cli(['borg', repo, '--', 'list', '--format', '{path}{NUL}', `::${archive}`]);
    expect(listed.code, listed.err).toBe(0);
    expect(listed.out.split('\0').filter(Boolean)).toEqual(c.items.map((i) => i.path));

    const before = describeTree(victim.home);
    const started = await startRestore(stack.deps, operator, { archive, client: 'victim' });
    const job = await waitForJob(stack, started.id);
    const context = await describeJob(stack, job.id);
    // Nothing written on the victim: not the escape, not the default target, not a job folder.
    expect(existsSync(c.escape), `${c.escape} was written\n${context}`).toBe(false);
    expect(existsSync(defaultRestoreTarget(job.id))).toBe(false);
    expect(existsSync(victim.path('.borgcube', 'jobs', job.id))).toBe(false);
    expect(describeTree(victim.home)).toEqual(before);

    expect(job.state, context).toBe('failed');
    expect(job.error, context).toBe(`archive ${archive} is not restored: ${c.reason}; it was crafted, not made by borg create`);
    // The guard's refusal is the one failure of the job's own steps: the walk runs while the
    // client's borg starts, and that borg, refused every item, may end first with its error.
    const events = (await stack.temporal.workflow.getHandle(job.id).fetchHistory()).events ?? [];
    const activity = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name]));
    const failures = events.filter((e) => e.activityTaskFailedEventAttributes).map((e) => `${activity.get(String(e.activityTaskFailedEventAttributes!.scheduledEventId))}: ${e.activityTaskFailedEventAttributes!.failure?.applicationFailureInfo?.type}`);
    expect(failures.filter((f) => !f.startsWith('extractRestore:')), context).toEqual(['restoreSelection: UnsafeArchive']);

    // Whatever credential was issued is revoked.
    expect((await listJobCredentials(stack.deps.db, job.id)).filter((x) => !x.revokedAt)).toEqual([]);

    // Control: the guard is what stopped it. Stock borg 1.2.4 extracts the same archive (as root,
    // into a scratch folder on the server) and writes the escape destination.
    if (!c.borgWrites) return;
    const scratch = tempDir('borgcube-test-crafted');
    try {
      const r = await stack.cli(['borg', repo, '--', 'extract', `::${archive}`], { cwd: scratch });
      expect([0, 1], r.err).toContain(r.code);
      expect(existsSync(c.escape) && lstatSync(c.escape).isFile(), 'stock borg did not write the escape: the case tests nothing').toBe(true);
    } finally {
      rmSync(c.escape, { force: true });
    }
  });
});
