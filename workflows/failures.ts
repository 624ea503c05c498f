// How the workflows retry activities and put a failure into words for the job's row.
import { ActivityFailure, ApplicationFailure, type RetryPolicy } from '@temporalio/workflow';

/** The default retry of every job step: about a minute and a half of attempts before the job fails. */
export const retry = { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '1m', maximumAttempts: 6 } as const satisfies RetryPolicy;

/**
 * The message of the failure that ended a step (the activity's own error, not Temporal's wrapper).
 * Given the step's retry policy, a retryable failure says that every attempt failed.
 */
export function describeFailure(err: unknown, policy?: RetryPolicy): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  const msg = e instanceof Error ? e.message : String(e);
  const exhausted = policy?.maximumAttempts !== undefined && err instanceof ActivityFailure && e instanceof ApplicationFailure && !e.nonRetryable;
  return exhausted ? `${msg} (gave up after ${policy.maximumAttempts} attempts)` : msg;
}

/** The type of an activity's ApplicationFailure (e.g. `JobFolderMissing`), to branch on. */
export function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}
