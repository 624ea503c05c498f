// The `backup` workflow (DESIGN.md §3): the job lifecycle (job-lifecycle.ts) with a body of one
// activity per step. Only orchestration here; every side effect is an activity.
import { CancellationScope, condition, patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ClientActivities, ClientProbe } from '../activities/client.js';
import { describeFailure, failureType, retry } from './failures.js';
import { jobSteps, runJob, settle, type JobOutcome } from './job-lifecycle.js';
import { admittedSignal, jobFaultSignal, statusQuery, violationSignal, type BackupStatus, type JobFaultSignal, type JobFinalState, type ViolationSignal } from './messages.js';
import { hostCleanupNeeded, neverStarted, storageHostActivities, storageHostFailure, type StorageHostActivities } from './storage-host.js';

/** Input of `backup`: ids only; activities load the rows. */
export interface BackupInput {
  jobId: string;
  clientId: string;
  repositoryId: string;
  storageHost: string;
  policyId?: string | null;
  triggeredBy?: string;
}

export interface BackupResult {
  state: JobFinalState;
  archiveName?: string;
  error?: string;
}

// Without a task queue, activities go to the queue this workflow runs on: the main queue.
// The run activity heartbeats every 2 s: a worker that dies is noticed within 20 s, and the
// retry (on a live worker) re-attaches to the borg still running on the client.
const clientActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry });

// Hooks may run for hours (their timeouts are the admin's); the end hooks, like cleanup, give up
// on an unreachable client after a few attempts.
const endHookRetry = { ...retry, maximumAttempts: 5 };
const endHookActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry: endHookRetry });
/**
 * How often a queued backup asks for a slot again without being woken, doubling from the first
 * to the last: the `admitted` signal normally wakes it at once; this only bounds what a lost
 * signal costs (services/admission.ts). The backoff keeps a job queued for days from filling its
 * workflow history (each round is a few events).
 */
export const QUEUE_RECHECK_MS = { first: 60_000, last: 15 * 60_000 };


/** One backup's state in the workflow: what the status query answers and what cleanup must wait for. */
class BackupJob {
  readonly status: BackupStatus;
  readonly storage: StorageHostActivities;
  violation: ViolationSignal | undefined;
  fault: JobFaultSignal | undefined;
  /** Whether a step of this job was sent to its storage host (cleanup leaves an untouched host out). */
  hostTouched = false;
  /** Started alongside finalize; cleanup awaits them instead of starting over. */
  revoked: Promise<void> | undefined;
  clientCleaned: Promise<void> | undefined;
  /** The before hooks were started: the end hooks run whatever happened next. */
  hooksStarted = false;
  /** Set once the job holds a slot: before that nothing ran, so cleanup has nothing to undo. */
  admitted = false;
  /** The `admitted` signal arrived since the last ask. */
  private woken = false;

  constructor(readonly input: BackupInput) {
    this.status = { jobId: input.jobId, phase: 'reserve', attempt: 0 };
    this.storage = storageHostActivities(input.storageHost);
  }

  wake(): void {
    this.woken = true;
  }

  /**
   * Waits for a slot under the concurrency limits (README "Concurrency limits and queueing"). The
   * row stays `queued` meanwhile; a cancel ends the wait with nothing done on the client or the
   * server. Histories from before the queue existed replay without this step.
   */
  async admit(): Promise<void> {
    if (patched('backup-admission')) {
      for (let recheck = QUEUE_RECHECK_MS.first; ; recheck = Math.min(recheck * 2, QUEUE_RECHECK_MS.last)) {
        // Reset before asking: a signal that arrives while the step runs still wakes the next wait.
        this.woken = false;
        if ((await jobSteps.admitBackup({ jobId: this.input.jobId })).admitted) break;
        this.status.phase = 'queued';
        await condition(() => this.woken, recheck);
      }
      this.status.phase = 'reserve';
    }
    this.admitted = true;
  }

  async reserve(): Promise<void> {
    await this.admit();
    const reserved = await jobSteps.reserveJob({ jobId: this.input.jobId, clientId: this.input.clientId, workflowRunId: workflowInfo().runId });
    this.status.archiveName = reserved.archiveName;
  }

  /** Prepare, push and run; the activities that start the push, run and finalize phases record them in the job row. */
  async run(): Promise<void> {
    const jobId = this.input.jobId;
    // A vanished job folder on the client (reboot into a wiped home, manual removal) sends us
    // back to prepare and push; anything else is retried inside the activities.
    for (let round = 1; ; round++) {
      this.status.attempt = round;
      this.status.phase = 'prepare';
      // reserveJob starts the job in this phase; a later round goes back to it.
      if (round > 1) await jobSteps.setPhase({ jobId, phase: 'prepare' });
      // The client's side (connect, `borg --version`) needs nothing prepared: both at once.
      // Both are awaited before going on, so a failure of one never leaves the other running.
      // The before hooks too (once per job): nothing of the job is on the client yet, and a
      // failing hook fails the job before the push. Histories from before hooks skip them.
      let hooks: Promise<unknown> = Promise.resolve();
      if (round === 1 && patched('backup-hooks')) {
        this.hooksStarted = true;
        hooks = clientActs.runBeforeHooks({ jobId });
      }
      this.hostTouched = true;
      const [prep, probe, before] = await Promise.allSettled([this.storage.prepare.prepareBackup({ jobId }), clientActs.probeClient({ jobId }), hooks]);
      // No worker of the host took the first step: nothing of the job is there to clean up.
      if (round === 1 && prep.status === 'rejected' && neverStarted(prep.reason)) this.hostTouched = false;
      if (before.status === 'rejected') throw before.reason;
      if (prep.status === 'rejected') throw storageHostFailure(this.input.storageHost, prep.reason);
      if (probe.status === 'rejected') throw probe.reason;
      const probed: ClientProbe = probe.value;
      this.status.phase = 'push';
      const { borgCmd, location } = await this.storage.clientFiles.pushJobFolder({ jobId, probed });
      this.status.phase = 'run';
      try {
        await clientActs.runBorgCreate({ jobId, borgCmd, location });
        return;
      } catch (err) {
        if (round < 3 && failureType(err) === 'JobFolderMissing') continue;
        throw err;
      }
    }
  }

  async finalize(): Promise<JobOutcome['stats']> {
    const jobId = this.input.jobId;
    this.status.phase = 'finalize';
    // borg is done with the client's folder and the credential: both go while the server
    // finalizes. The files cache comes back now; cleanupJob keeps it only if the job succeeds.
    // Neither is cancelled with the run: cleanup waits for them instead of starting over.
    this.revoked = CancellationScope.nonCancellable(() => settle(this.storage.repo.revokeCredential({ jobId })));
    this.clientCleaned = CancellationScope.nonCancellable(() => settle(this.storage.clientCleanup.cleanupClient({ jobId, keepFilesCache: true })));
    return (await this.storage.repo.finalizeBackup({ jobId })).stats;
  }

  /**
   * Always, also after a cancellation: credential, client folder, server-side job files; then the
   * end hooks, once borg and the job folder are gone from the client. A failed hook makes the job
   * failed (a succeeded backup's archive stays, and its error says so), so that the console and
   * alerts show it; a cancelled or violated job keeps its state, its error gets the hook's line.
   */
  async cleanup(outcome: JobOutcome): Promise<JobOutcome> {
    const jobId = this.input.jobId;
    const succeeded = outcome.state === 'succeeded';
    if (!this.admitted) {
      // Cancelled (or its row ended) while queued: no credential, job files or client folder exist.
      if (outcome.state === 'cancelled') await settle(jobSteps.logJob({ jobId, message: 'cancelled while queued: nothing ran', level: 'INFO' }));
      return outcome;
    }
    this.status.phase = 'cleanup';
    await jobSteps.setPhase({ jobId, phase: 'cleanup' });
    if (hostCleanupNeeded(this.hostTouched)) {
      // Revoking (server side) and cleaning the client up do not depend on each other.
      await Promise.all([
        this.revoked ?? settle(this.storage.repo.revokeCredential({ jobId })),
        this.clientCleaned ?? settle(this.storage.clientCleanup.cleanupClient({ jobId, keepFilesCache: succeeded })),
      ]);
      await settle(this.storage.repo.cleanupJob({ jobId, succeeded }));
    }
    if (!this.hooksStarted) return outcome;
    let failures: string[];
    try {
      ({ failures } = await endHookActs.runEndHooks({ jobId, state: outcome.state }));
    } catch (err) {
      failures = [`the after hooks could not run: ${describeFailure(err, endHookRetry)}`];
    }
    if (!failures.length) return outcome;
    const hooks = failures.join('; ');
    if (succeeded) return { ...outcome, state: 'failed', error: `${hooks} (the backup itself succeeded: archive ${this.status.archiveName ?? '?'} is stored)` };
    return { ...outcome, error: `${outcome.error ?? outcome.state}; ${hooks}` };
  }
}

export async function backup(input: BackupInput): Promise<BackupResult> {
  const job = new BackupJob(input);
  const runScope = new CancellationScope();
  setHandler(statusQuery, () => job.status);
  setHandler(admittedSignal, () => job.wake());
  setHandler(violationSignal, (v) => {
    if (job.violation) return;
    job.violation = v;
    job.status.violation = v;
    // Stop at once: the run activity is cancelled (it kills the remote borg); cleanup still runs.
    runScope.cancel();
  });
  // A full repository disk: retrying would only fill it again. Cleanup still runs.
  setHandler(jobFaultSignal, (f) => {
    if (job.violation || job.fault) return;
    job.fault = f;
    runScope.cancel();
  });
  const outcome = await runJob({
    jobId: input.jobId,
    failureType: 'BackupFailed',
    bodyRetry: retry,
    reserve: () => job.reserve(),
    body: () =>
      runScope.run(async () => {
        await job.run();
        return { stats: await job.finalize() };
      }),
    cleanup: (o) => job.cleanup(o),
    violation: () => job.violation,
    fault: () => job.fault,
    ended: (o) => Object.assign(job.status, { phase: 'done', state: o.state, error: o.error }),
  });
  return { state: outcome.state, archiveName: job.status.archiveName, error: outcome.error };
}
