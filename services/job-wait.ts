// Waiting for a job's end (`borgcube backup --wait` and the other --wait options). Polling the
// row every second made the CLI exit up to a second after the job ended; instead each round races
// the signals of the end and then reads the row, which is final by then.
import { isActive } from '../db/queries/jobs.js';
import type { JobEventHub } from '../infra/job-event-hub.js';
import type { ServiceDeps } from './deps.js';
import { getJob, type JobView } from './jobs.js';

/**
 * Resolves with the job's final row. Each round waits for the first of: the job's `state` event on
 * Redis (published right after the row became final), the workflow's result (the row is final
 * before the workflow completes), or `recheckMs` — the net under both (a workflow that is gone, an
 * event lost while Redis reconnected).
 */
export async function waitForJobEnd(deps: ServiceDeps, hub: JobEventHub, id: string, recheckMs = 5000): Promise<JobView> {
  let wake = () => {};
  const unsubscribe = await hub.subscribe(id, (e) => {
    if (e.type === 'state' && (e.phase === 'done' || !isActive(e.state))) wake();
  });
  try {
    // Whether it completes, fails or does not exist: the job's row says how the job ended.
    let workflowEnded = false;
    const ended = (await deps.temporal()).workflow
      .getHandle(id)
      .result()
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => (workflowEnded = true));
    for (;;) {
      const job = await getJob(deps, id);
      if (!isActive(job.state)) return job;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, recheckMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        // Once the workflow is over (a row it could not end), only events and the recheck remain.
        if (!workflowEnded) void ended.then(wake);
      });
    }
  } finally {
    unsubscribe();
  }
}
