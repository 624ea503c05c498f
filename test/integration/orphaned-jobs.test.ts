// A job whose workflow is gone (terminated in Temporal's UI, or never started because its starter
// died between writing the row and starting the workflow) must not stay `running` forever: that
// would refuse every later backup of its client. `borgcube job cancel` ends such a row at once,
// and the periodic sweep ends the ones nobody cancels; a backup's cleanup then runs as a workflow
// of its own, so nothing of the job stays on the client or the server.
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { and, eq, isNull } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as jobsQ from '../../db/queries/jobs.js';
import { jobCredentialsTable, jobKeysTable } from '../../db/schema.js';
import { jobServerDir } from '../../infra/storage-layout.js';
import { addClient } from '../../services/clients.js';
import { endOrphanedJobs } from '../../services/orphaned-jobs.js';
import { getJob, jobLogTail, startBackup } from '../../services/jobs.js';
import { getRepository } from '../../services/repositories.js';
import type { OrphanCleanupResult } from '../../workflows/orphan-cleanup.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, gatedBorg, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { expectJobEnds } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';

describe('jobs without a running workflow', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  let host: ClientHost;
  let gate: ReturnType<typeof gatedBorg>;

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n' } });
    gate = gatedBorg(host);
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    await addClient(stack.deps, { name: 'web', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: gate.path });
  });
  afterAll(async () => {
    gate.release();
    await runCleanups();
  });

  it('cancel ends a job whose workflow was terminated; the client can back up again', async () => {
    gate.hold();
    const job = await startBackup(stack.deps, { client: 'web', repository: 'r1' });
    await waitFor('the job to reach borg create', async () => (await getJob(stack.deps, job.id)).phase === 'run', { timeoutMs: 60_000 });
    await stack.temporal.workflow.getHandle(job.id).terminate('an admin gave up on it');
    expect((await getJob(stack.deps, job.id)).state).toBe('running');
    await expect(startBackup(stack.deps, { client: 'web', repository: 'r1' })).rejects.toThrow(`already has a running backup (job ${job.id})`);

    const r = await stack.cli(['job', 'cancel', job.id]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('had no running workflow any more; it is marked failed');
    const ended = await getJob(stack.deps, job.id);
    expect(ended.state).toBe('failed');
    expect(ended.error).toMatch(/^the job's workflow ended \(TERMINATED\); it can no longer record how the job ended/);
    const live = await stack.db.handle.db.select().from(jobCredentialsTable).where(and(eq(jobCredentialsTable.jobId, job.id), isNull(jobCredentialsTable.revokedAt)));
    expect(live).toHaveLength(0);
    // Cancelling it again is refused like any ended job.
    expect((await stack.cli(['job', 'cancel', job.id])).code).not.toBe(0);

    // What the terminated workflow's cleanup would have done runs as a workflow of its own: the
    // borg held on the client is stopped and the job folder (key, cache, credential) leaves the
    // client; the server's job files and the job key go too.
    expect(ended.error).toContain(`(its cleanup runs as workflow cleanup-${job.id})`);
    const cleanup = (await stack.temporal.workflow.getHandle(`cleanup-${job.id}`).result()) as OrphanCleanupResult;
    expect(cleanup.clientError).toBeUndefined();
    expect(existsSync(host.path('.borgcube', 'jobs', job.id)), 'the job folder is still on the client').toBe(false);
    expect(existsSync(jobServerDir(stack.deps.config, job.id)), "the server's job folder is still there").toBe(false);
    expect(await stack.db.handle.db.select().from(jobKeysTable).where(eq(jobKeysTable.jobId, job.id))).toHaveLength(0);
    expect((await jobLogTail(stack.deps, job.id)).map((l) => l.message)).toContain("cleanup after the job's end: the job folder on the client and the server's job files are gone");

    gate.release();
    const next = await startBackup(stack.deps, { client: 'web', repository: 'r1' });
    await expectJobEnds(stack, next.id, 'succeeded');
  });

  it('the sweep ends old rows whose workflow never started, and leaves young rows and live jobs alone', async () => {
    const repo = await getRepository(stack.deps, 'r1');
    const old = await jobsQ.insertJob(stack.deps.db, { id: randomUUID(), kind: 'prune', repositoryId: repo.id, createdAt: new Date(Date.now() - 3600_000) });
    const young = await jobsQ.insertJob(stack.deps.db, { id: randomUUID(), kind: 'prune', repositoryId: repo.id });
    gate.hold();
    const live = await startBackup(stack.deps, { client: 'web', repository: 'r1' });
    try {
      await waitFor('the job to reach borg create', async () => (await getJob(stack.deps, live.id)).phase === 'run', { timeoutMs: 60_000 });
      // With the default age limit only `old` qualifies; `young` may be a row whose workflow
      // is being started right now.
      expect(await endOrphanedJobs(stack.deps)).toEqual([old.id]);
      expect((await getJob(stack.deps, old.id)).error).toMatch(/^the job's workflow does not exist;/);
      expect((await getJob(stack.deps, young.id)).state).toBe('running');
      // Without an age limit, `young` goes too; the live job, whose workflow runs, stays.
      expect(await endOrphanedJobs(stack.deps, 0)).toEqual([young.id]);
      expect((await getJob(stack.deps, live.id)).state).toBe('running');
    } finally {
      gate.release();
    }
    await expectJobEnds(stack, live.id, 'succeeded');
  });
});
