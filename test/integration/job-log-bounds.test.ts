// A job's log costs a bounded amount whatever the client prints (issue 21, point 4): at most
// logLinesPerJob lines and logBytesPerJob bytes of the client's are stored in PostgreSQL, with one
// WARNING saying the log was cut, and at most eventsPerSecond live events go to Redis each second.
// BorgCube's own lines and the job's last error do not depend on that bound.
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobLog, type LogLimits } from '../../activities/remote-borg/job-log.js';
import type { BorgLine } from '../../activities/borg-output.js';
import * as jobsQ from '../../db/queries/jobs.js';
import { insertRepository } from '../../db/queries/repositories.js';
import { loadConfig } from '../../infra/config.js';
import { createEventPublisher, createRedis, jobChannel, jobEvent, type EventPublisher, type JobEvent } from '../../infra/events.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';
import { waitFor } from '../harness/net.js';

const plenty: LogLimits = { logLinesPerJob: 1_000_000, logBytesPerJob: 2 ** 30, eventsPerSecond: 1_000_000 };

const clientLine = (message: string, level = 'INFO'): BorgLine => ({ kind: 'log', level, type: 'file_status', msgid: null, message, time: null });

const progressLine = (n: number): BorgLine => ({ kind: 'progress', originalSize: n, compressedSize: n, deduplicatedSize: n, nfiles: n, path: `/data/${n}`, time: Date.now() / 1000 });

describe('JobLog bounds', () => {
  let t: TestDatabase;
  let events: EventPublisher;
  let repositoryId: string;

  beforeAll(async () => {
    t = await createTestDatabase();
    events = createEventPublisher(createRedis(loadConfig().redisUrl));
    registerCleanup('event publisher', () => events.close());
    const repo = await insertRepository(t.handle.db, { name: 'r1', path: '/nonexistent/r1', storageHost: 'local', encryption: 'repokey', borgId: 'ab'.repeat(32), keySealed: 'x', passphraseSealed: 'x' });
    repositoryId = repo.id;
  });
  afterAll(runCleanups);

  const newJob = async () => (await jobsQ.insertJob(t.handle.db, { id: randomUUID(), kind: 'backup', repositoryId })).id;

  /** The job's stored lines, counted in PostgreSQL: the client's, and the notices of the cut. */
  async function stored(jobId: string) {
    const r = await t.handle.db.execute<{ client_lines: number; client_bytes: number; cuts: number; total: number }>(sql`
      select count(*) filter (where type <> 'borgcube')::int as client_lines,
             coalesce(sum(octet_length(message) + octet_length(type) + coalesce(octet_length(msgid), 0)) filter (where type <> 'borgcube'), 0)::int as client_bytes,
             count(*) filter (where type = 'borgcube' and level = 'WARNING' and message like '%reached its bound%')::int as cuts,
             count(*)::int as total
      from job_log_lines where job_id = ${jobId}`);
    return r.rows[0]!;
  }

  /** Feeds lines the way detached-run.ts does: one at a time, with a flush check now and then. */
  async function flood(log: JobLog, n: number, line: (i: number) => BorgLine) {
    for (let i = 0; i < n; i++) {
      await log.line(line(i));
      if (i % 100 === 0) await log.maybeFlush();
    }
  }

  it('a flood of lines stores at most logLinesPerJob, says once that it was cut, and keeps own lines and the last error after the cut', async () => {
    const jobId = await newJob();
    const limits = { ...plenty, logLinesPerJob: 50 };
    const log = new JobLog({ db: t.handle.db, events }, jobId, 0, limits);
    await log.own('borg create started');
    await flood(log, 2000, (i) => clientLine(`A /evil/${i}`));
    await log.line(clientLine('Failed to create/acquire the lock (past the cut)', 'ERROR'));
    await log.own('borg create ended with exit code 2');
    await log.flush();

    const s = await stored(jobId);
    expect(s.client_lines).toBeGreaterThan(0);
    expect(s.client_lines).toBeLessThanOrEqual(limits.logLinesPerJob);
    expect(s.cuts).toBe(1);
    // The client's lines and three of BorgCube's: started, the cut, the exit.
    expect(s.total).toBeLessThanOrEqual(limits.logLinesPerJob + 3);
    const tail = await jobsQ.lastLogLines(t.handle.db, jobId, 2);
    expect(tail.map((l) => [l.type, l.level, l.message])).toEqual([
      ['borgcube', 'WARNING', expect.stringContaining('reached its bound')],
      ['borgcube', 'INFO', 'borg create ended with exit code 2'],
    ]);
    // Not stored, still the job's outcome: the error (and that it is worth a retry) is tracked.
    expect(log.lastError).toBe('Failed to create/acquire the lock (past the cut)');
    expect(log.lastErrorTransient).toBe(true);
  });

  it('a flood of lines stores at most logBytesPerJob bytes of messages, counted as stored (control characters escaped)', async () => {
    const jobId = await newJob();
    const limits = { ...plenty, logBytesPerJob: 4096 };
    const log = new JobLog({ db: t.handle.db, events }, jobId, 0, limits);
    // 100 bytes as the client sent them; 16 control characters are stored as `\xNN` (4 bytes each).
    await flood(log, 1000, (i) => clientLine(`${String(i).padStart(4, '0')} ${'x'.repeat(79)}${'\u001b'.repeat(16)}`));
    await log.line(clientLine('Connection closed by remote host (past the cut)', 'ERROR'));
    await log.own('borg create ended with exit code 2');
    await log.flush();

    const s = await stored(jobId);
    expect(s.client_lines).toBeGreaterThan(0);
    expect(s.client_bytes).toBeLessThanOrEqual(limits.logBytesPerJob);
    expect(s.cuts).toBe(1);
    const [last] = await jobsQ.lastLogLines(t.handle.db, jobId, 1);
    expect(last?.message).toBe('borg create ended with exit code 2');
    expect(log.lastError).toBe('Connection closed by remote host (past the cut)');
  });

  it('a retried follower (JobLog.resume) goes on with the byte budget of the job instead of a fresh one', async () => {
    const jobId = await newJob();
    const limits = { ...plenty, logBytesPerJob: 4096 };
    // Two attempts of the run activity (or a run and a hook), each flooding the same job.
    for (let attempt = 0; attempt < 2; attempt++) {
      const log = await JobLog.resume({ db: t.handle.db, events }, jobId, limits);
      await flood(log, 200, (i) => clientLine(`${attempt} ${String(i).padStart(4, '0')} ${'y'.repeat(90)}`));
      await log.flush();
    }
    const s = await stored(jobId);
    expect(s.client_bytes).toBeLessThanOrEqual(limits.logBytesPerJob);
    // Said once: the second follower finds the log cut already and adds nothing.
    expect(s.cuts).toBe(1);
  });

  it('the fields a client chooses besides the message count too: question lines with a long type and no message', async () => {
    const jobId = await newJob();
    const limits = { ...plenty, logBytesPerJob: 4096 };
    const log = new JobLog({ db: t.handle.db, events }, jobId, 0, limits);
    const question = (i: number): BorgLine => ({ kind: 'log', level: 'WARNING', type: `question_${'q'.repeat(50)}`, msgid: `${i}`.padStart(40, 'm'), message: '', time: null });
    await flood(log, 1000, question);
    await log.flush();
    const s = await stored(jobId);
    expect(s.client_lines).toBeGreaterThan(0);
    expect(s.client_lines).toBeLessThan(1000);
    expect(s.client_bytes).toBeLessThanOrEqual(limits.logBytesPerJob);
    expect(s.cuts).toBe(1);
  });

  /** Every event of the job's channel on a real Redis subscriber, until `done` is awaited. */
  async function subscribe(jobId: string) {
    const sub = createRedis(loadConfig().redisUrl);
    registerCleanup('redis subscriber', () => void sub.disconnect());
    const got: JobEvent[] = [];
    sub.on('message', (_channel: string, message: string) => got.push(jobEvent.parse(JSON.parse(message))));
    await sub.subscribe(jobChannel(jobId));
    return {
      got,
      /** Publishes a last event on the same connection and waits for it: everything before it has arrived. */
      async done() {
        await events.publish(jobId, { type: 'state', jobId, state: 'succeeded', phase: 'done', error: null });
        await waitFor('the last event', () => got.some((e) => e.type === 'state'), { timeoutMs: 10_000 });
        await sub.quit();
        return got.filter((e) => e.type !== 'state');
      },
    };
  }

  /** Runs `step` in a loop for about `ms` of wall-clock time; returns how many distinct seconds it touched. */
  async function during(ms: number, step: () => Promise<void>): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < ms) {
      await step();
      await new Promise((r) => setTimeout(r, 2));
    }
    return Math.floor(Date.now() / 1000) - Math.floor(start / 1000) + 1;
  }

  it('a flood of log lines publishes at most eventsPerSecond live events a second; all of them are stored', async () => {
    const jobId = await newJob();
    const limits = { ...plenty, eventsPerSecond: 20 };
    const log = new JobLog({ db: t.handle.db, events }, jobId, 0, limits);
    const sub = await subscribe(jobId);
    let n = 0;
    const seconds = await during(2200, async () => {
      for (let i = 0; i < 20; i++) await log.line(clientLine(`A /flood/${n++}`));
      await log.maybeFlush();
    });
    await log.flush();
    const published = await sub.done();

    expect(n).toBeGreaterThan(limits.eventsPerSecond * seconds * 5);
    expect(published.every((e) => e.type === 'log')).toBe(true);
    expect(published.length).toBeGreaterThan(0);
    expect(published.length).toBeLessThanOrEqual(limits.eventsPerSecond * seconds);
    expect((await stored(jobId)).client_lines).toBe(n);
  });

  it('progress lines are capped by eventsPerSecond too', async () => {
    const jobId = await newJob();
    // Below the 10 a second progress is otherwise published at.
    const limits = { ...plenty, eventsPerSecond: 3 };
    const log = new JobLog({ db: t.handle.db, events }, jobId, 0, limits);
    const sub = await subscribe(jobId);
    let n = 0;
    const seconds = await during(2200, async () => {
      await log.line(progressLine(n++));
      await new Promise((r) => setTimeout(r, 10));
    });
    const published = await sub.done();

    expect(published.every((e) => e.type === 'progress')).toBe(true);
    expect(published.length).toBeGreaterThan(0);
    expect(published.length).toBeLessThanOrEqual(limits.eventsPerSecond * seconds);
    // The heartbeat still gets the latest progress.
    expect(log.progress?.nfiles).toBe(n - 1);
  });
});
