// The `backup` workflow (DESIGN.md §3): one activity per step, cleanup always.
// Workflow id = job id. Only orchestration here; every side effect is an activity.
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ClientActivities, ClientProbe } from '../activities/client.js';
import type { StorageActivities } from '../activities/storage.js';
import type { JobActivities } from '../activities/jobs.js';
import type { AlertActivities } from '../activities/alerts.js';
import { statusQuery, violationSignal, type BackupStatus, type JobFinalState, type ViolationSignal } from './messages.js';
import { storageTaskQueue } from './task-queues.js';

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

const retry = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 6 } as const;

// Without a task queue, activities go to the queue this workflow runs on: the main queue.
const jobActs = proxyActivities<JobActivities>({ startToCloseTimeout: '1m', retry });
// The job row's updates are a few statements: run in the worker itself, without a task-queue
// round trip (each costs tens of milliseconds of a job that may only take seconds).
const localJobActs = proxyLocalActivities<JobActivities>({ startToCloseTimeout: '30s', retry });
// The run activity heartbeats every 2 s: a worker that dies is noticed within 20 s, and the
// retry (on a live worker) re-attaches to the borg still running on the client.
const clientActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry });
// Cleanup of an unreachable client gives up after about half a minute: the credential is
// revoked on the server anyway, so what stays on that client opens nothing.
const cleanupActs = proxyActivities<ClientActivities>({ startToCloseTimeout: '5m', heartbeatTimeout: '1m', retry: { ...retry, maximumAttempts: 5 } });
const alertActs = proxyActivities<AlertActivities>({ startToCloseTimeout: '2m', retry });

export async function backup(input: BackupInput): Promise<BackupResult> {
  const storageActs = proxyActivities<StorageActivities>({
    taskQueue: storageTaskQueue(input.storageHost),
    // Preparing a large repository's indexes can take long; these do not heartbeat.
    startToCloseTimeout: '2h',
    retry,
  });
  const status: BackupStatus = { jobId: input.jobId, phase: 'reserve', attempt: 0 };
  let violation: ViolationSignal | undefined;
  const runScope = new CancellationScope();
  setHandler(statusQuery, () => status);
  setHandler(violationSignal, (v) => {
    if (violation) return;
    violation = v;
    status.violation = v;
    // Stop at once: the run activity is cancelled (it kills the remote borg); cleanup still runs.
    runScope.cancel();
  });

  let state: JobFinalState = 'failed';
  let error: string | undefined;
  let stats: Awaited<ReturnType<StorageActivities['finalizeBackup']>>['stats'] | undefined;
  let revoked: Promise<void> | undefined;
  let clientCleaned: Promise<void> | undefined;
  try {
    const reserveInput = { ...input, workflowRunId: workflowInfo().runId };
    const reserved = patched('reserve-locally') ? await localJobActs.reserveJob(reserveInput) : await jobActs.reserveJob(reserveInput);
    status.archiveName = reserved.archiveName;
    // The activities that start the push, run and finalize phases record them in the job row.
    const phasesByActivities = patched('phases-recorded-by-activities');
    const setPhase = async (phase: string) => {
      if (!phasesByActivities) await localJobActs.setPhase({ jobId: input.jobId, phase });
    };
    await runScope.run(async () => {
      // A vanished job folder on the client (reboot into a wiped home, manual removal) sends
      // us back to prepare and push; anything else is retried inside the activities.
      for (let round = 1; ; round++) {
        status.attempt = round;
        status.phase = 'prepare';
        // reserveJob starts the job in this phase; a later round goes back to it.
        if (!phasesByActivities || round > 1) await localJobActs.setPhase({ jobId: input.jobId, phase: 'prepare' });
        let probed: ClientProbe | undefined;
        if (patched('probe-client-during-prepare')) {
          // The client's side (connect, `borg --version`) needs nothing prepared: both at once.
          // Both are awaited before going on, so a failure of one never leaves the other running.
          const [prep, probe] = await Promise.allSettled([storageActs.prepareBackup({ jobId: input.jobId }), clientActs.probeClient({ jobId: input.jobId })]);
          if (prep.status === 'rejected') throw prep.reason;
          if (probe.status === 'rejected') throw probe.reason;
          probed = probe.value;
        } else {
          await storageActs.prepareBackup({ jobId: input.jobId });
        }
        status.phase = 'push';
        await setPhase('push');
        const { borgCmd } = await clientActs.pushJobFolder({ jobId: input.jobId, probed });
        status.phase = 'run';
        await setPhase('run');
        try {
          await clientActs.runBorgCreate({ jobId: input.jobId, borgCmd });
          break;
        } catch (err) {
          if (round < 3 && failureType(err) === 'JobFolderMissing') continue;
          throw err;
        }
      }
      status.phase = 'finalize';
      await setPhase('finalize');
      if (patched('clean-up-while-finalizing')) {
        // borg is done with the client's folder and the credential: both go while the server
        // finalizes. The files cache comes back now; cleanupJob keeps it only if the job succeeds.
        // Neither is cancelled with the run: cleanup below waits for them instead of starting over.
        revoked = CancellationScope.nonCancellable(() => settle(storageActs.revokeCredential({ jobId: input.jobId })));
        clientCleaned = CancellationScope.nonCancellable(() => settle(cleanupActs.cleanupClient({ jobId: input.jobId, keepFilesCache: true })));
      }
      stats = (await storageActs.finalizeBackup({ jobId: input.jobId })).stats;
    });
    state = 'succeeded';
  } catch (err) {
    if (violation) {
      state = 'violation';
      error = `violation: ${violation.kind}: ${violation.detail}`;
    } else if (isCancellation(err)) {
      state = 'cancelled';
      error = 'cancelled';
    } else {
      state = 'failed';
      error = describeFailure(err);
    }
  }

  // Cleanup always runs, also after a cancellation of the whole workflow.
  status.phase = 'cleanup';
  await CancellationScope.nonCancellable(async () => {
    await localJobActs.setPhase({ jobId: input.jobId, phase: 'cleanup' });
    // Revoking (server side) and cleaning the client up do not depend on each other; after a
    // finished run both already started alongside finalize, and are only awaited here.
    const revoke = () => revoked ?? settle(storageActs.revokeCredential({ jobId: input.jobId }));
    const cleanClient = () => clientCleaned ?? settle(cleanupActs.cleanupClient({ jobId: input.jobId, keepFilesCache: state === 'succeeded' }));
    if (patched('revoke-while-cleaning-client')) await Promise.all([revoke(), cleanClient()]);
    else {
      await revoke();
      await cleanClient();
    }
    await settle(storageActs.cleanupJob({ jobId: input.jobId, succeeded: state === 'succeeded' }));
    const completion = { jobId: input.jobId, state, error, stats };
    if (patched('complete-locally')) await localJobActs.completeJob(completion);
    else await jobActs.completeJob(completion);
    // Incidents (failure/violation open, success resolves) and their notices; patched so that
    // histories recorded before this step replay unchanged.
    if (patched('alerts-on-job-end')) await settle(alertActs.jobEnded({ jobId: input.jobId }));
  });
  status.phase = 'done';
  status.state = state;
  status.error = error;
  if (state === 'failed' || state === 'violation') {
    // Fail the workflow too, so the Temporal UI shows what the console shows.
    throw ApplicationFailure.nonRetryable(error ?? state, state === 'violation' ? 'Violation' : 'BackupFailed');
  }
  return { state, archiveName: status.archiveName, error };
}

/** Cleanup steps must not stop each other; their failures are logged by the activities. */
async function settle(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch {
    /* recorded by the activity; the next step still runs */
  }
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  const msg = e instanceof Error ? e.message : String(e);
  // A retryable failure that still ended the job means every attempt failed: say so.
  const exhausted = err instanceof ActivityFailure && e instanceof ApplicationFailure && !e.nonRetryable;
  return exhausted ? `${msg} (gave up after ${retry.maximumAttempts} attempts)` : msg;
}
