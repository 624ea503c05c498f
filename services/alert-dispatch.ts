// The start of each notice's delivery: one `deliverAlert` workflow per notice (workflow id =
// `alert-<notice id>`, so a notice is never delivered twice), whose activity retries failed POSTs
// and SMTP sends (activities/alert-delivery.ts).
import { WorkflowExecutionAlreadyStartedError, type Client as TemporalClient } from '@temporalio/client';
import type { Db } from '../db/client.js';
import * as alertsQ from '../db/queries/alerts.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import { deliverAlert, deliverAlertWorkflowId } from '../workflows/alert-delivery.js';

/**
 * Starts a delivery workflow for every notice that has none yet (idempotent: the workflow id is
 * the notice's). Returns how many were started.
 */
export async function dispatchPendingNotifications(deps: { db: Db; config: Config; log: Logger; temporal: TemporalClient }, ids?: string[]): Promise<number> {
  const { db, config, temporal, log } = deps;
  let started = 0;
  for (const id of await alertsQ.undispatchedNotices(db, ids)) {
    try {
      await temporal.workflow.start(deliverAlert, { workflowId: deliverAlertWorkflowId(id), taskQueue: config.temporal.taskQueue, args: [{ notificationId: id }] });
      started++;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    await alertsQ.markNoticeDispatched(db, id);
  }
  if (started) log.info({ started }, 'alert deliveries started');
  return started;
}

/** Notices whose delivery workflow was started long ago but that are still pending (lost starts). */
export async function redispatchStuckNotifications(db: Db, olderThan: Date): Promise<void> {
  await alertsQ.undispatchStuckNotices(db, olderThan);
}
