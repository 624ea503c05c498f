// The restore workflow's branches with mocked activities (STYLE.md §18) on the run's Temporal
// server: a violation stops the running extract and still cleans up everything; a target the
// client refuses ends the job before anything reaches the client; a vanished job folder sends
// the job back to prepare and push; a storage host that prepares before the selection is walked
// has the extract started meanwhile, checked against the selection's counts, and stopped by a
// selection that fails. The real activities run in test/e2e/restore.test.ts.
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCleanups } from '../harness/cleanup.js';
import { createTestWorkflowEnvironment } from '../harness/temporal.js';
import { restore, type RestoreInput } from '../../workflows/restore.js';
import { storageTaskQueue } from '../../workflows/task-queues.js';
import { violationSignal } from '../../workflows/messages.js';

const workflowsPath = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));
const prepared = { archiveName: 'a', items: 3, files: 2, bytes: 10 };

type Behaviour = {
  probe?: () => Promise<{ version: string | null }>;
  run?: (round: number) => Promise<unknown>;
  /** The storage host prepares before the selection (prepareRestoreStart), whose counts this gives. */
  selection?: () => Promise<unknown>;
};

const ran = { check: 'count', listed: 0, writtenBytes: 10, found: { nondirs: 2, dirs: 1, unreadable: false }, target: '/t', durationSeconds: 1 };

/** Runs until cancelled, as the real run does (it stops borg on the client then). */
async function untilCancelled(): Promise<never> {
  const ctx = Context.current();
  for (;;) {
    ctx.heartbeat();
    await Promise.race([ctx.cancelled, new Promise((r) => setTimeout(r, 100))]);
  }
}

describe('the restore workflow (mocked activities)', () => {
  let env: TestWorkflowEnvironment;
  const queue = `restore-wf-${randomUUID()}`;
  const storageHost = `h-${randomUUID().slice(0, 8)}`;
  const calls = new Map<string, string[]>();
  const behaviour = new Map<string, Behaviour>();
  const started = new Map<string, () => void>();
  let workers: Promise<void>;
  let shutdown: () => void;

  const record = (jobId: string, what: string) => calls.set(jobId, [...(calls.get(jobId) ?? []), what]);

  beforeAll(async () => {
    env = await createTestWorkflowEnvironment();
    const runs = new Map<string, number>();
    const main = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace,
      taskQueue: queue,
      workflowsPath,
      activities: {
        reserveJob: ({ jobId }: { jobId: string }) => (record(jobId, 'reserve'), Promise.resolve({ archiveName: 'a' })),
        setPhase: ({ jobId, phase }: { jobId: string; phase: string }) => (record(jobId, `phase:${phase}`), Promise.resolve()),
        completeJob: ({ jobId, state }: { jobId: string; state: string }) => (record(jobId, `complete:${state}`), Promise.resolve()),
        jobEnded: () => Promise.resolve(),
        probeRestoreClient: ({ jobId }: { jobId: string }) => (record(jobId, 'probe'), behaviour.get(jobId)?.probe?.() ?? Promise.resolve({ version: '1.2.4' })),
        runBorgExtract: async ({ jobId }: { jobId: string }) => {
          const round = (runs.get(jobId) ?? 0) + 1;
          runs.set(jobId, round);
          record(jobId, 'run');
          started.get(jobId)?.();
          const b = behaviour.get(jobId)?.run;
          if (b) return b(round);
          return { items: 3, nfiles: 2, restoredBytes: 10, writtenBytes: 10, durationSeconds: 1 };
        },
        extractRestore: ({ jobId }: { jobId: string }) => {
          record(jobId, 'extract');
          started.get(jobId)?.();
          return behaviour.get(jobId)?.run?.(1) ?? Promise.resolve(ran);
        },
        checkRestore: ({ jobId, expected, ran: r }: { jobId: string; expected: { items: number; files: number; bytes: number }; ran: typeof ran }) => {
          record(jobId, `check:${expected.items}:${r.found.nondirs}`);
          return Promise.resolve({ items: expected.items, nfiles: expected.files, restoredBytes: expected.bytes, writtenBytes: r.writtenBytes, durationSeconds: r.durationSeconds });
        },
      },
    });
    const storage = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace,
      taskQueue: storageTaskQueue(storageHost),
      activities: {
        prepareRestore: ({ jobId, selectLater }: { jobId: string; selectLater?: boolean }) => {
          record(jobId, 'prepare');
          // Asked by every restore workflow now; only some hosts prepare before the selection.
          record(jobId, `selectLater:${selectLater}`);
          return Promise.resolve(behaviour.get(jobId)?.selection ? { archiveName: 'a', selecting: true } : prepared);
        },
        restoreSelection: async ({ jobId }: { jobId: string }) => {
          const r = await behaviour.get(jobId)!.selection!();
          record(jobId, 'selected');
          return r;
        },
        // The job folder's way to the client and back runs where its files are (activities/client-files.ts).
        pushJobFolder: ({ jobId }: { jobId: string }) => (record(jobId, 'push'), Promise.resolve({ borgCmd: 'borg', deployed: false, version: '1.2.4', location: 'ssh://borgcube@127.0.0.1:2222/x' })),
        cleanupClient: ({ jobId, failedRestore }: { jobId: string; failedRestore?: boolean }) => (record(jobId, 'cleanupClient'), record(jobId, `failedRestore:${failedRestore}`), Promise.resolve()),
        revokeCredential: ({ jobId }: { jobId: string }) => (record(jobId, 'revoke'), Promise.resolve()),
        cleanupJob: ({ jobId, succeeded }: { jobId: string; succeeded: boolean }) => (record(jobId, `cleanupJob:${succeeded}`), Promise.resolve({ removedObjects: 0 })),
      },
    });
    shutdown = () => {
      main.shutdown();
      storage.shutdown();
    };
    workers = Promise.all([main.run(), storage.run()]).then(() => undefined);
  }, 120_000);
  afterAll(async () => {
    shutdown?.();
    await workers;
    await runCleanups();
  });

  function start(b: Behaviour = {}) {
    const jobId = randomUUID();
    behaviour.set(jobId, b);
    const input: RestoreInput = { jobId, clientId: randomUUID(), repositoryId: randomUUID(), storageHost };
    const running = new Promise<void>((r) => started.set(jobId, r));
    return { jobId, running, handle: env.client.workflow.start(restore, { workflowId: jobId, taskQueue: queue, args: [input] }) };
  }

  it('succeeds with the extract’s counts as stats and cleans up', async () => {
    const { jobId, handle } = start();
    const r = await (await handle).result();
    expect(r.state).toBe('succeeded');
    expect(calls.get(jobId)).toEqual(expect.arrayContaining(['reserve', 'prepare', 'selectLater:true', 'probe', 'push', 'run', 'phase:cleanup', 'revoke', 'cleanupClient', 'failedRestore:false', 'cleanupJob:true', 'complete:succeeded']));
  }, 60_000);

  it('starts the extract while the storage host walks the selection, and checks it against the selection’s counts', async () => {
    let extracting!: () => void;
    const extractStarted = new Promise<void>((r) => (extracting = r));
    const { jobId, handle, running } = start({
      // The selection ends only once borg runs: the two overlap.
      selection: async () => (await extractStarted, { items: 7, files: 2, dirs: 1, nondirs: 2, bytes: 10 }),
    });
    void running.then(extracting);
    const r = await (await handle).result();
    expect(r.state).toBe('succeeded');
    const c = calls.get(jobId)!;
    expect(c).not.toContain('run');
    expect(c.indexOf('extract')).toBeLessThan(c.indexOf('selected'));
    expect(c).toEqual(expect.arrayContaining(['check:7:2', 'failedRestore:false', 'cleanupJob:true', 'complete:succeeded']));
    expect(c.indexOf('check:7:2')).toBeGreaterThan(c.indexOf('selected'));
  }, 60_000);

  it('a selection that fails stops the running extract, is the job’s error, and has the made target removed', async () => {
    let extracting!: () => void;
    const extractStarted = new Promise<void>((r) => (extracting = r));
    const { jobId, handle, running } = start({
      run: untilCancelled,
      selection: async () => {
        await extractStarted;
        throw ApplicationFailure.nonRetryable('path /srv/nope is not in archive a', 'PathNotInArchive');
      },
    });
    void running.then(extracting);
    const err = await (await handle).result().then(() => undefined, (e: Error) => e);
    expect((err?.cause as Error | undefined)?.message).toBe('path /srv/nope is not in archive a');
    // The running extract was asked to stop (it learns so at its next heartbeat, maybe after the job ended).
    const events = (await (await handle).fetchHistory()).events ?? [];
    const scheduled = new Map(events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => [String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType?.name]));
    const cancelRequested = events.filter((e) => e.activityTaskCancelRequestedEventAttributes).map((e) => scheduled.get(String(e.activityTaskCancelRequestedEventAttributes!.scheduledEventId)));
    expect(cancelRequested).toEqual(['extractRestore']);
    const c = calls.get(jobId)!;
    expect(c.some((x) => x.startsWith('check:'))).toBe(false);
    expect(c).toEqual(expect.arrayContaining(['revoke', 'cleanupClient', 'failedRestore:true', 'cleanupJob:false', 'complete:failed']));
  }, 60_000);

  it('a violation stops the running extract and still cleans up everything', async () => {
    const { jobId, handle, running } = start({ run: untilCancelled });
    const h = await handle;
    await running;
    await h.signal(violationSignal, { kind: 'forbidden-method', detail: 'put in a restore', at: new Date().toISOString() });
    await expect(h.result()).rejects.toThrow();
    const c = calls.get(jobId)!;
    expect(c).toEqual(expect.arrayContaining(['revoke', 'cleanupClient', 'cleanupJob:false', 'complete:violation']));
    expect(c.indexOf('complete:violation')).toBeGreaterThan(c.indexOf('cleanupJob:false'));
  }, 60_000);

  it('a target the client refuses ends the job before anything reaches the client', async () => {
    const { jobId, handle } = start({ probe: () => Promise.reject(ApplicationFailure.nonRetryable('the restore target "/x" on client c exists and is not a directory', 'RestoreTargetInvalid')) });
    const err = await (await handle).result().then(() => undefined, (e: Error) => e);
    expect((err?.cause as Error | undefined)?.message).toMatch(/^the restore target "\/x" on client c exists and is not a directory$/);
    const c = calls.get(jobId)!;
    expect(c).not.toContain('push');
    expect(c).not.toContain('run');
    expect(c).toEqual(expect.arrayContaining(['revoke', 'cleanupClient', 'cleanupJob:false', 'complete:failed']));
  }, 60_000);

  it('goes back to prepare and push when the job folder vanished from the client', async () => {
    const { jobId, handle } = start({
      run: (round) =>
        round === 1 ? Promise.reject(ApplicationFailure.nonRetryable('the job folder is gone from the client', 'JobFolderMissing')) : Promise.resolve({ items: 3, nfiles: 2, restoredBytes: 10, writtenBytes: 10, durationSeconds: 1 }),
    });
    expect((await (await handle).result()).state).toBe('succeeded');
    expect(calls.get(jobId)!.filter((c) => c === 'push')).toHaveLength(2);
    expect(calls.get(jobId)).toContain('phase:prepare');
  }, 60_000);
});
