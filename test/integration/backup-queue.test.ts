// The concurrency limit on real services (README "Concurrency limits and queueing"): a
// repository limited to 2 backups at once, three clients whose borg create is held at a gate.
// The third backup waits as `queued` with position 1, starts when one of the two ends, and
// succeeds; a queued backup that is cancelled ends with nothing done on its client or the server;
// the queue lives in PostgreSQL and survives a worker killed while a job waits.
import { existsSync } from 'node:fs';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobCredentialsTable, jobKeysTable } from '../../db/schema.js';
import { addClient } from '../../services/clients.js';
import { getJob, jobLogTail, startBackup } from '../../services/jobs.js';
import { statusQuery } from '../../workflows/messages.js';
import { runCleanups } from '../harness/cleanup.js';
import { createClientHost, gatedBorg, type ClientHost } from '../harness/client-host.js';
import { waitFor } from '../harness/net.js';
import { expectJobEnds } from '../harness/policies.js';
import { startClientSshd, type ClientSshd } from '../harness/sshd.js';
import { expectCli, startStack, type TestStack } from '../harness/stack.js';

describe('backup queue', () => {
  let stack: TestStack;
  let sshd: ClientSshd;
  const hosts = new Map<string, { host: ClientHost; gate: ReturnType<typeof gatedBorg> }>();

  beforeAll(async () => {
    stack = await startStack();
    sshd = await startClientSshd();
    await expectCli(stack, ['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    // The server default (4) would not queue three backups: this repository takes two.
    expect((await expectCli(stack, ['repo', 'set', 'r1', '--max-backups', '2'])).out).toContain('repository r1: at most 2 backups at once');
    for (const name of ['a', 'b', 'c']) {
      const host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/f.txt': `${name}\n` } });
      const gate = gatedBorg(host);
      hosts.set(name, { host, gate });
      await addClient(stack.deps, { name, host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: gate.path });
    }
  });
  afterAll(async () => {
    for (const h of hosts.values()) h.gate.release();
    await runCleanups();
  });

  const h = (name: string) => hosts.get(name)!;
  const state = async (id: string) => (await getJob(stack.deps, id)).state;
  const atBorgCreate = (id: string) => waitFor(`job ${id} to reach borg create`, async () => (await getJob(stack.deps, id)).phase === 'run', { timeoutMs: 90_000 });

  /** Two backups running (held at borg create) and a third queued behind them. */
  async function fillAndQueue() {
    for (const n of ['a', 'b', 'c']) h(n).gate.hold();
    const a = await startBackup(stack.deps, { client: 'a', repository: 'r1', triggeredBy: 'test' });
    const b = await startBackup(stack.deps, { client: 'b', repository: 'r1', triggeredBy: 'test' });
    await Promise.all([atBorgCreate(a.id), atBorgCreate(b.id)]);
    const c = await startBackup(stack.deps, { client: 'c', repository: 'r1', triggeredBy: 'test' });
    // Its workflow asked for a slot and was told to wait: the row stays queued.
    const handle = stack.temporal.workflow.getHandle(c.id);
    await waitFor('the third backup to be told to wait', async () => (await handle.query(statusQuery).catch(() => undefined))?.phase === 'queued', { timeoutMs: 30_000 });
    return { a, b, c };
  }

  it('holds the limit: the third backup waits as queued, position 1, and starts when one ends', async () => {
    const { a, b, c } = await fillAndQueue();
    const queued = await getJob(stack.deps, c.id);
    expect(queued.state).toBe('queued');
    expect(queued.queuePosition).toBe(1);
    expect(queued.startedAt).toBeNull();
    expect((await expectCli(stack, ['job', 'show', c.id])).out).toMatch(/state\s+queued \(position 1\)/);
    expect((await expectCli(stack, ['jobs', '--state', 'queued'])).out).toContain('queued (position 1)');
    // A while later it still waits: the two slots are taken.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await state(c.id)).toBe('queued');
    expect([await state(a.id), await state(b.id)]).toEqual(['running', 'running']);

    // a ends: its slot goes to c, which runs (held at its own gate) while b still runs.
    h('a').gate.release();
    await expectJobEnds(stack, a.id, 'succeeded');
    await atBorgCreate(c.id);
    expect([await state(b.id), await state(c.id)]).toEqual(['running', 'running']);
    const admitted = await getJob(stack.deps, c.id);
    expect(admitted.startedAt!.getTime()).toBeGreaterThanOrEqual((await getJob(stack.deps, a.id)).finishedAt!.getTime() - 1000);
    h('b').gate.release();
    h('c').gate.release();
    await expectJobEnds(stack, b.id, 'succeeded');
    await expectJobEnds(stack, c.id, 'succeeded');
  });

  it('cancels a queued backup: it ends cancelled, and nothing reached its client or the server', async () => {
    const { a, b, c } = await fillAndQueue();
    const r = await expectCli(stack, ['job', 'cancel', c.id]);
    expect(r.out).toContain(`cancel requested for ${c.id}`);
    const ended = await expectJobEnds(stack, c.id, 'cancelled');
    expect(ended.startedAt).toBeNull();
    expect(existsSync(h('c').host.path('.borgcube', 'jobs', c.id)), 'a job folder was made on the client').toBe(false);
    expect(await stack.db.handle.db.select().from(jobCredentialsTable).where(eq(jobCredentialsTable.jobId, c.id))).toHaveLength(0);
    expect(await stack.db.handle.db.select().from(jobKeysTable).where(eq(jobKeysTable.jobId, c.id))).toHaveLength(0);
    expect((await jobLogTail(stack.deps, c.id)).map((l) => l.message)).toEqual(['cancelled while queued: nothing ran']);
    // The others were not disturbed.
    expect([await state(a.id), await state(b.id)]).toEqual(['running', 'running']);
    h('a').gate.release();
    h('b').gate.release();
    await expectJobEnds(stack, a.id, 'succeeded');
    await expectJobEnds(stack, b.id, 'succeeded');
  });

  it('limits a storage host from `storage-host set`: a second backup waits, and raising the limit admits it at once', async () => {
    const host = stack.config.storageHost;
    expect((await expectCli(stack, ['storage-host', 'set', host, '--max-backups', '1'])).out).toContain(`storage host ${host}: at most 1 backups at once`);
    expect((await expectCli(stack, ['storage-host', 'set', 'no-such-host', '--max-backups', '1'], 1)).err).toContain('storage host "no-such-host" does not exist');
    try {
      for (const n of ['a', 'b']) h(n).gate.hold();
      const a = await startBackup(stack.deps, { client: 'a', repository: 'r1', triggeredBy: 'test' });
      await atBorgCreate(a.id);
      // The repository takes two, the host one: b waits for the host.
      const b = await startBackup(stack.deps, { client: 'b', repository: 'r1', triggeredBy: 'test' });
      const handle = stack.temporal.workflow.getHandle(b.id);
      await waitFor('the second backup to be told to wait', async () => (await handle.query(statusQuery).catch(() => undefined))?.phase === 'queued', { timeoutMs: 30_000 });
      expect((await getJob(stack.deps, b.id)).queuePosition).toBe(1);
      const listed = JSON.parse((await expectCli(stack, ['storage-host', 'list', '--json'])).out) as Array<{ name: string; maxConcurrentBackups: number | null }>;
      expect(listed.find((x) => x.name === host)?.maxConcurrentBackups).toBe(1);
      // Back to the server default (8): b is admitted now, while a still runs.
      expect((await expectCli(stack, ['storage-host', 'set', host, '--max-backups', 'default'])).out).toContain('(the server default)');
      await atBorgCreate(b.id);
      expect(await state(a.id)).toBe('running');
      h('a').gate.release();
      h('b').gate.release();
      await expectJobEnds(stack, a.id, 'succeeded');
      await expectJobEnds(stack, b.id, 'succeeded');
    } finally {
      await expectCli(stack, ['storage-host', 'set', host, '--max-backups', 'default']);
    }
  });

  it('keeps the queue across a worker killed while a backup waits', async () => {
    const { a, b, c } = await fillAndQueue();
    await stack.worker.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await stack.worker.start();
    expect(await state(c.id)).toBe('queued');
    expect((await getJob(stack.deps, c.id)).queuePosition).toBe(1);
    h('a').gate.release();
    h('c').gate.release();
    // a's run re-attaches to its held borg after the heartbeat timeout, ends, and admits c.
    await expectJobEnds(stack, a.id, 'succeeded', 240_000);
    await expectJobEnds(stack, c.id, 'succeeded', 240_000);
    h('b').gate.release();
    await expectJobEnds(stack, b.id, 'succeeded', 240_000);
  });
});
