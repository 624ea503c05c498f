// The `restore` workflow (DESIGN.md §3, restore paragraph; issue 20 point 3): the job lifecycle
// (job-lifecycle.ts) with the backup's steps and `borg extract` on the target client. Only
// orchestration here; every side effect is an activity.
import { ActivityCancellationType, CancellationScope, proxyActivities, proxyLocalActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { ClientActivities } from '../activities/client.js';
import { failureType, retry } from './failures.js';
import { jobSteps, runJob, settle, type JobStats } from './job-lifecycle.js';
import { statusQuery, violationSignal, type BackupStatus, type JobFinalState, type ViolationSignal } from './messages.js';
import { hostCleanupNeeded, neverStarted, storageHostActivities, storageHostFailure, type StorageHostActivities } from './storage-host.js';

/** Input of `restore`: ids only; activities load the rows (the job's restore spec says what goes where). */
export interface RestoreInput {
  jobId: string;
  /** The target client. */
  clientId: string;
  repositoryId: string;
  storageHost: string;
  triggeredBy?: string;
}

export interface RestoreResult {
  state: JobFinalState;
  archiveName?: string;
  error?: string;
}

// As in backup.ts: the run heartbeats every 2 s; a retry after a worker's death re-attaches to the
// borg extract still running on the client.
const clientActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry });
// The run started beside the selection: a cancelled one (the selection failed) is waited for until
// it has stopped borg, so that the cleanup after it finds nothing of the job still running.
const extractActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry, cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED });
// The check of a run against the selection: a comparison and a log line, in the worker itself.
const clientChecks = proxyLocalActivities<ClientActivities>({ startToCloseTimeout: '30s', retry });

class RestoreJob {
  readonly status: BackupStatus;
  readonly storage: StorageHostActivities;
  violation: ViolationSignal | undefined;
  /** Whether a step of this job was sent to its storage host (cleanup leaves an untouched host out). */
  hostTouched = false;

  constructor(readonly input: RestoreInput) {
    this.status = { jobId: input.jobId, phase: 'reserve', attempt: 0 };
    this.storage = storageHostActivities(input.storageHost);
  }

  async reserve(): Promise<void> {
    const reserved = await jobSteps.reserveJob({ jobId: this.input.jobId, clientId: this.input.clientId, workflowRunId: workflowInfo().runId });
    this.status.archiveName = reserved.archiveName;
  }

  /**
   * Prepare ∥ probe (with the target's checks), push, extract; the result is the job's stats. The
   * storage host walks the archive for the selection while the client's borg starts (prepare
   * returns before it, restoreSelection gives its counts); one that prepares whole (older hosts,
   * a dump restore) gives the counts at once, and the run checks against them itself.
   */
  async run(): Promise<JobStats> {
    const jobId = this.input.jobId;
    for (let round = 1; ; round++) {
      this.status.attempt = round;
      this.status.phase = 'prepare';
      if (round > 1) await jobSteps.setPhase({ jobId, phase: 'prepare' });
      // Both are awaited before going on, so a failure of one never leaves the other running.
      this.hostTouched = true;
      const [prep, probe] = await Promise.allSettled([this.storage.prepare.prepareRestore({ jobId, jobKey: 'authenticated', selectLater: true }), clientActs.probeRestoreClient({ jobId })]);
      // No worker of the host took the first step: nothing of the job is there to clean up.
      if (round === 1 && prep.status === 'rejected' && neverStarted(prep.reason)) this.hostTouched = false;
      if (probe.status === 'rejected') throw probe.reason;
      if (prep.status === 'rejected') throw storageHostFailure(this.input.storageHost, prep.reason);
      const prepared = prep.value;
      this.status.phase = 'push';
      const { borgCmd, location } = await this.storage.clientFiles.pushJobFolder({ jobId, probed: probe.value });
      this.status.phase = 'run';
      let restored: Awaited<ReturnType<ClientActivities['checkRestore']>>;
      try {
        if (!('selecting' in prepared)) restored = await clientActs.runBorgExtract({ jobId, borgCmd, location, prepared });
        else {
          // The walk runs since prepare: this only waits for its end.
          const selection = this.storage.selection.restoreSelection({ jobId });
          const extractScope = new CancellationScope();
          const extracting = extractScope.run(() => extractActs.extractRestore({ jobId, borgCmd, location, prepared }));
          // A selection that fails (a path not in the archive, an unsafe one) stops borg at once and is the job's error.
          const stopping = selection.catch((err: unknown) => {
            extractScope.cancel();
            throw err;
          });
          const [selected, ran] = await Promise.allSettled([stopping, extracting]);
          if (selected.status === 'rejected') throw selected.reason;
          if (ran.status === 'rejected') throw ran.reason;
          restored = await clientChecks.checkRestore({ jobId, expected: selected.value, ran: ran.value });
        }
      } catch (err) {
        if (round < 3 && failureType(err) === 'JobFolderMissing') continue;
        throw err;
      }
      return { nfiles: restored.nfiles, items: restored.items, restoredBytes: restored.restoredBytes, writtenBytes: restored.writtenBytes, durationSeconds: restored.durationSeconds };
    }
  }

  /** Always, also after a cancellation or a violation: credential, client folder, server-side job files. */
  async cleanup(succeeded: boolean): Promise<void> {
    const jobId = this.input.jobId;
    this.status.phase = 'cleanup';
    await jobSteps.setPhase({ jobId, phase: 'cleanup' });
    if (!hostCleanupNeeded(this.hostTouched)) return;
    await Promise.all([settle(this.storage.repo.revokeCredential({ jobId })), settle(this.storage.clientCleanup.cleanupClient({ jobId, failedRestore: !succeeded }))]);
    await settle(this.storage.repo.cleanupJob({ jobId, succeeded }));
  }
}

export async function restore(input: RestoreInput): Promise<RestoreResult> {
  const job = new RestoreJob(input);
  const runScope = new CancellationScope();
  setHandler(statusQuery, () => job.status);
  setHandler(violationSignal, (v) => {
    if (job.violation) return;
    job.violation = v;
    job.status.violation = v;
    // Stop at once: the run activity is cancelled (it kills the remote borg); cleanup still runs.
    runScope.cancel();
  });
  const outcome = await runJob({
    jobId: input.jobId,
    failureType: 'RestoreFailed',
    bodyRetry: retry,
    reserve: () => job.reserve(),
    body: () => runScope.run(async () => ({ stats: await job.run() })),
    cleanup: (o) => job.cleanup(o.state === 'succeeded'),
    violation: () => job.violation,
    ended: (o) => Object.assign(job.status, { phase: 'done', state: o.state, error: o.error }),
  });
  return { state: outcome.state, archiveName: job.status.archiveName, error: outcome.error };
}
