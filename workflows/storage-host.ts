// The activities of a job's storage host (its task queue `storage-<host>`, DESIGN.md §2): the
// repository steps (prepare, finalize, revoke, cleanup) and the job folder's way to the client
// and back (activities/client-files.ts), which run where the prepared files are.
import { ApplicationFailure, TimeoutFailure, patched, proxyActivities } from '@temporalio/workflow';
import type { ClientFileActivities } from '../activities/client-files.js';
import type { StorageActivities } from '../activities/storage.js';
import { retry } from './failures.js';
import { storageTaskQueue } from './task-queues.js';

/**
 * How long a job's first step on its storage host may wait for the host's worker to take it. A
 * host known to be down fails the job when it is reserved (services/storage-hosts.ts); this is
 * for one that went down since. Generous: a busy host's worker may be slow to take new work.
 */
export const STORAGE_HOST_START_TIMEOUT = '10m';

export function storageHostActivities(storageHost: string) {
  const taskQueue = storageTaskQueue(storageHost);
  return {
    host: storageHost,
    // Preparing a large repository's indexes can take long; these do not heartbeat.
    prepare: proxyActivities<StorageActivities>({ taskQueue, startToCloseTimeout: '2h', scheduleToStartTimeout: STORAGE_HOST_START_TIMEOUT, retry }),
    repo: proxyActivities<StorageActivities>({ taskQueue, startToCloseTimeout: '2h', retry }),
    // A restore's selection, walked in the repository service: a walk lost with a restarted
    // service is noticed within a minute (and walked again), not after the 2 h.
    selection: proxyActivities<StorageActivities>({ taskQueue, startToCloseTimeout: '2h', heartbeatTimeout: '1m', scheduleToStartTimeout: STORAGE_HOST_START_TIMEOUT, retry }),
    // As the client activities on the main queue: uploads heartbeat as they go.
    clientFiles: proxyActivities<ClientFileActivities>({ taskQueue, startToCloseTimeout: '7 days', heartbeatTimeout: '20s', retry }),
    // Cleanup of an unreachable client gives up after about half a minute: the credential is
    // revoked on the server anyway, so what stays on that client opens nothing.
    clientCleanup: proxyActivities<ClientFileActivities>({ taskQueue, startToCloseTimeout: '5m', heartbeatTimeout: '1m', retry: { ...retry, maximumAttempts: 5 } }),
  };
}

export type StorageHostActivities = ReturnType<typeof storageHostActivities>;

/** Whether a first step failed because no worker of its host took it (the host never saw the job). */
export function neverStarted(err: unknown): boolean {
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof TimeoutFailure && cause.timeoutType === 'SCHEDULE_TO_START';
}

/**
 * Whether the job's cleanup may leave its storage host out: nothing of the job reached the host
 * (its reservation refused a host that is down, or no worker of the host took the first step), so
 * there is nothing to revoke or remove there — and waiting for that host would keep the job from
 * ever ending. Histories from before this rule ran the host's cleanup steps regardless.
 */
export function hostCleanupNeeded(hostTouched: boolean): boolean {
  return hostTouched || !patched('storage-host-untouched-skips-cleanup');
}

/** A first step no worker of the host took in time becomes the message the job's row shows. */
export function storageHostFailure(storageHost: string, err: unknown): unknown {
  if (neverStarted(err)) {
    return ApplicationFailure.nonRetryable(
      `storage host ${storageHost} is not responding: no storage worker took the job's first step within ${STORAGE_HOST_START_TIMEOUT} (see \`borgcube storage-host list\`)`,
      'StorageHostDown',
    );
  }
  return err;
}
