// The one lifecycle of every job (DESIGN.md §3, §6): reserve → body → end → alerts. Workflow id =
// job id. Backup, prune and check are this with their own body; a restore will be too. Ending the
// job and its alerts run whatever happened before, also after the workflow was cancelled.
import { ApplicationFailure, CancellationScope, isCancellation, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';
import type { JobActivities } from '../activities/jobs.js';
import { describeFailure, retry } from './failures.js';
import type { JobFaultSignal, JobFinalState, ViolationSignal } from './messages.js';

export type JobStats = NonNullable<Parameters<JobActivities['completeJob']>[0]['stats']>;

/** How a job ended, as its row records it. */
export interface JobOutcome {
  state: JobFinalState;
  error?: string;
  stats?: JobStats;
}

/** What the body of a job returns: an `error` ends the job failed without a failing step (a check that found problems). */
export interface JobBodyResult {
  stats?: JobStats;
  error?: string;
}

export interface JobSpec {
  jobId: string;
  /** The workflow failure's type when the job fails (`BackupFailed`, `PruneFailed`, …). */
  failureType: string;
  /** The retry policy of the body's steps, so that a failure can say every attempt failed. */
  bodyRetry?: typeof retry;
  /** The first step: refuses a job whose row already ended, records the first phase. */
  reserve(): Promise<void>;
  body(): Promise<JobBodyResult>;
  /**
   * The job's own cleanup, before its end is recorded; it cannot be cancelled. It may return the
   * outcome amended (a backup's after hook that failed adds to the job's error).
   */
  cleanup?(outcome: JobOutcome): Promise<JobOutcome | void>;
  /** The proxy's violation signal, if one arrived: it decides what the job was. */
  violation?(): ViolationSignal | undefined;
  /** The repository service's fault signal, if one arrived: the job failed with its message. */
  fault?(): JobFaultSignal | undefined;
  /** After the end was recorded (e.g. the status query's last answer). */
  ended?(outcome: JobOutcome): void;
}

// The job row's updates are a few statements: run in the worker itself, without a task-queue
// round trip (each costs tens of milliseconds of a job that may only take seconds).
export const jobSteps = proxyLocalActivities<JobActivities>({ startToCloseTimeout: '30s', retry });
const alertSteps = proxyActivities<AlertActivities>({ startToCloseTimeout: '2m', retry });

/** Runs a job through its lifecycle; a failed or violated job fails the workflow too, so the Temporal UI shows what the console shows. */
export async function runJob(job: JobSpec): Promise<JobOutcome> {
  let outcome: JobOutcome;
  try {
    await job.reserve();
    const r = await job.body();
    outcome = { state: r.error ? 'failed' : 'succeeded', error: r.error, stats: r.stats };
  } catch (err) {
    outcome = failedOutcome(err, job);
  }
  await CancellationScope.nonCancellable(async () => {
    outcome = (await job.cleanup?.(outcome)) ?? outcome;
    await jobSteps.completeJob({ jobId: job.jobId, ...outcome });
    // Incidents (failure/violation open, success resolves) and their notices; the sweep delivers
    // what is pending if this fails.
    await settle(alertSteps.jobEnded({ jobId: job.jobId }));
  });
  job.ended?.(outcome);
  if (outcome.state === 'failed' || outcome.state === 'violation') {
    throw ApplicationFailure.nonRetryable(outcome.error ?? outcome.state, outcome.state === 'violation' ? 'Violation' : job.failureType);
  }
  return outcome;
}

function failedOutcome(err: unknown, job: JobSpec): JobOutcome {
  const violation = job.violation?.();
  if (violation) return { state: 'violation', error: `violation: ${violation.kind}: ${violation.detail}` };
  const fault = job.fault?.();
  if (fault) return { state: 'failed', error: fault.message };
  if (isCancellation(err)) return { state: 'cancelled', error: 'cancelled' };
  return { state: 'failed', error: describeFailure(err, job.bodyRetry) };
}

/** Cleanup steps must not stop each other; their failures are logged by the activities. */
export async function settle(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch {
    /* recorded by the activity; the next step still runs */
  }
}
