// Alert activities (main task queue): record what a job's end means for incidents, sweep for
// staleness, and deliver one notice (a webhook POST or an e-mail), leaving retries to Temporal.
// The incident rules live in services/alerts.ts; these are the side-effecting steps around them.
import { ApplicationFailure } from '@temporalio/activity';
import type { Client as TemporalClient } from '@temporalio/client';
import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { alertChannelsTable, alertNotificationsTable } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import { AlertDeliveryError, dispatchPendingNotifications, openChannelTarget, recordJobOutcome, redispatchStuckNotifications, sendAlert, sweepStaleness } from '../services/alerts.js';
import { endOrphanedJobs } from '../services/jobs.js';

export interface AlertActivityDeps {
  db: Db;
  config: Config;
  log: Logger;
  /** Opens the sealed channel targets (loaded on first use). */
  masterKey(): MasterKey;
  /** Starts the delivery workflows. */
  temporal(): Promise<TemporalClient>;
}

/** A notice still pending this long after its delivery started was lost (e.g. Temporal's history was reset). */
const STUCK_AFTER_MS = 6 * 3600 * 1000;

export function createAlertActivities(deps: AlertActivityDeps) {
  const { db, log } = deps;

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

    /** Sends one notice. Throws (→ Temporal retries) until it is delivered; permanent failures stop at once. */
    async deliverNotification({ notificationId }: { notificationId: string }): Promise<{ delivered: boolean }> {
      const row = (await db.select().from(alertNotificationsTable).where(eq(alertNotificationsTable.id, notificationId)))[0];
      if (!row || row.state !== 'pending') return { delivered: row?.state === 'sent' };
      const channel = (await db.select().from(alertChannelsTable).where(eq(alertChannelsTable.id, row.channelId)))[0];
      if (!channel) return { delivered: false };
      await db.update(alertNotificationsTable).set({ attempts: sql`${alertNotificationsTable.attempts} + 1` }).where(eq(alertNotificationsTable.id, notificationId));
      try {
        await sendAlert(openChannelTarget(deps.masterKey(), channel), row.payload);
      } catch (err) {
        const message = (err as Error).message;
        await db.update(alertNotificationsTable).set({ lastError: message.slice(0, 1000) }).where(eq(alertNotificationsTable.id, notificationId));
        log.warn({ notification: notificationId, channel: channel.label, err: message }, 'alert delivery failed');
        if (err instanceof AlertDeliveryError && err.permanent) throw ApplicationFailure.nonRetryable(message, 'AlertDeliveryFailed');
        throw err;
      }
      await db.update(alertNotificationsTable).set({ state: 'sent', sentAt: new Date(), lastError: null }).where(eq(alertNotificationsTable.id, notificationId));
      log.info({ notification: notificationId, channel: channel.label, kind: row.payload.kind, event: row.event }, 'alert delivered');
      return { delivered: true };
    },

    async markNotificationFailed({ notificationId, error }: { notificationId: string; error: string }): Promise<void> {
      await db.update(alertNotificationsTable).set({ state: 'failed', lastError: error.slice(0, 1000) }).where(eq(alertNotificationsTable.id, notificationId));
    },
  };
}

export type AlertActivities = ReturnType<typeof createAlertActivities>;
