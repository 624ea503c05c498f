// `borgcube job logs ID --follow` (issue 4): the worker publishes each log line on Redis at once
// and stores it in PostgreSQL with its batch a moment later. A follower that subscribes in between
// sees the line in neither place at first; it must still print it, in order, once it is stored —
// not skip it when the next line arrives live.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as jobsQ from '../../db/queries/jobs.js';
import { createEventPublisher, createRedis, jobChannel, type EventPublisher } from '../../infra/events.js';
import { getRepository } from '../../services/repositories.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { waitFor } from '../harness/net.js';
import { startStack, type TestStack } from '../harness/stack.js';

describe('borgcube job logs --follow', () => {
  let stack: TestStack;
  let events: EventPublisher;
  const redis = () => createRedis(stack.config.redisUrl);

  beforeAll(async () => {
    stack = await startStack({ worker: false });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    events = createEventPublisher(redis());
    registerCleanup('event publisher', () => events.close());
  });
  afterAll(runCleanups);

  it('prints a line that was published before it subscribed and stored only later, in order', async () => {
    const repo = await getRepository(stack.deps, 'r1');
    const job = await jobsQ.insertJob(stack.deps.db, { id: randomUUID(), kind: 'prune', repositoryId: repo.id });
    const line = (seq: number) => ({ jobId: job.id, seq, time: new Date(), level: 'INFO', type: 'borgcube', msgid: null, message: `line ${seq}` });
    const publish = (seq: number) => events.publish(job.id, { type: 'log', seq, time: new Date().toISOString(), level: 'INFO', kind: 'borgcube', msgid: null, message: `line ${seq}` });
    await jobsQ.insertLogLines(stack.deps.db, [1, 2, 3].map(line));
    // Line 4 is on its way: published, its batch not in PostgreSQL yet.
    await publish(4);

    const following = stack.cli(['job', 'logs', job.id, '--follow'], { timeoutMs: 60_000 });
    const probe = redis();
    registerCleanup('redis probe', () => void probe.disconnect());
    await waitFor('the follower to subscribe', async () => ((await probe.pubsub('NUMSUB', jobChannel(job.id))) as [string, number])[1] > 0, { timeoutMs: 20_000 });

    // The next line arrives live; the batch with both lands a second later (batches are
    // stored in order, so line 5 is never in PostgreSQL before line 4).
    await publish(5);
    await new Promise((r) => setTimeout(r, 1000));
    await jobsQ.insertLogLines(stack.deps.db, [line(4), line(5)]);
    // Progress comes up to ten times a second; the follower prints one line per
    // FOLLOW_PROGRESS_EVERY_MS, and the last one held back before the job's end.
    const progress = (n: number, done: number) => events.publish(job.id, { type: 'progress', originalSize: done, compressedSize: 0, deduplicatedSize: 0, nfiles: 0, path: 'srv/a\u001bb', time: Date.now() / 1000, totalSize: 400, n });
    await progress(1, 100);
    await progress(2, 200);
    await progress(3, 300);

    await jobsQ.completeJob(stack.deps.db, job.id, 'succeeded', null, null);
    await events.publish(job.id, { type: 'state', jobId: job.id, state: 'succeeded', phase: 'done', error: null });
    const r = await following;
    expect(r.code, r.err).toBe(0);
    const printed = r.out.split('\n').filter(Boolean);
    expect(printed.map((l) => l.replace(/^\S+ \S+\s+/, ''))).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', '100 of 400 bytes restored (25.0%); at srv/a\\x1bb', '300 of 400 bytes restored (75.0%); at srv/a\\x1bb', 'job succeeded']);
    expect(printed[5]).toMatch(/^\S+ PROGRESS /);
    expect(printed[6]).toMatch(/^\S+ PROGRESS /);
  });
});
