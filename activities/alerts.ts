// Alert activities (main task queue): record what a job's end means for incidents, and the
// periodic sweep for staleness. The incident rules live in services/incidents.ts; these are the
// side-effecting steps around them, ending with the start of the notices' delivery.
import type { Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../db/client.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import { dispatchPendingNotifications, redispatchStuckNotifications } from '../services/alert-dispatch.js';
import { recordJobOutcome, sweepStaleness } from '../services/incidents.js';
import { endOrphanedJobs } from '../services/orphaned-jobs.js';

export interface AlertActivityDeps {
  db: Db;
  config: Config;
  log: Logger;
  /** Starts the delivery workflows. */
  temporal(): Promise<TemporalClient>;
}

/** A notice still pending this long after its delivery started was lost (e.g. Temporal's history was reset). */
const STUCK_AFTER_MS = 6 * 3600 * 1000;

export function createAlertActivities(deps: AlertActivityDeps) {
  const { db } = deps;

  async function dispatch(ids?: string[]) {
    if (ids && ids.length === 0) return 0;
    return dispatchPendingNotifications({ ...deps, temporal: await deps.temporal() }, ids);
  }

  return {
    /** After a job ended (any kind): open or resolve its incidents and start delivering the notices. */
    async jobEnded({ jobId }: { jobId: string }): Promise<{ notices: number }> {
      const ids = await recordJobOutcome(deps, jobId);
      await dispatch(ids);
      return { notices: ids.length };
    },

    /** The periodic sweep: orphaned jobs, staleness incidents, plus any notice whose delivery never started. */
    async sweepAlerts(): Promise<{ notices: number; dispatched: number }> {
      // Jobs whose workflow is gone would otherwise stay `running` (and block their client's
      // backups) forever; once ended they count as failed jobs for the incidents, too.
      const ids: string[] = [];
      for (const jobId of await endOrphanedJobs(deps)) ids.push(...(await recordJobOutcome(deps, jobId)));
      ids.push(...(await sweepStaleness(deps)));
      await redispatchStuckNotifications(db, new Date(Date.now() - STUCK_AFTER_MS));
      const dispatched = await dispatch();
      return { notices: ids.length, dispatched };
    },
  };
}

export type AlertActivities = ReturnType<typeof createAlertActivities>;
