// The delivery of one notice (a webhook POST or an e-mail), leaving retries to Temporal
// (workflows/alert-delivery.ts): each attempt is counted and its error kept on the notice.
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.js';
import * as alertsQ from '../db/queries/alerts.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import { openChannelTarget } from '../services/alert-channels.js';
import { AlertDeliveryError, sendAlert } from '../services/alert-transport.js';

export interface AlertDeliveryActivityDeps {
  db: Db;
  log: Logger;
  /** Opens the sealed channel targets (loaded on first use). */
  masterKey(): MasterKey;
}

export function createAlertDeliveryActivities(deps: AlertDeliveryActivityDeps) {
  const { db, log } = deps;
  return {
    /** Sends one notice. Throws (→ Temporal retries) until it is delivered; permanent failures stop at once. */
    async deliverNotification({ notificationId }: { notificationId: string }): Promise<{ delivered: boolean }> {
      const row = await alertsQ.findNotice(db, notificationId);
      if (!row || row.state !== 'pending') return { delivered: row?.state === 'sent' };
      const channel = await alertsQ.findChannelById(db, row.channelId);
      if (!channel) return { delivered: false };
      await alertsQ.countNoticeAttempt(db, notificationId);
      try {
        await sendAlert(openChannelTarget(deps.masterKey(), channel), row.payload);
      } catch (err) {
        const message = (err as Error).message;
        await alertsQ.setNoticeError(db, notificationId, message);
        log.warn({ notification: notificationId, channel: channel.label, err: message }, 'alert delivery failed');
        if (err instanceof AlertDeliveryError && err.permanent) throw ApplicationFailure.nonRetryable(message, 'AlertDeliveryFailed');
        throw err;
      }
      await alertsQ.markNoticeSent(db, notificationId);
      log.info({ notification: notificationId, channel: channel.label, kind: row.payload.kind, event: row.event }, 'alert delivered');
      return { delivered: true };
    },

    async markNotificationFailed({ notificationId, error }: { notificationId: string; error: string }): Promise<void> {
      await alertsQ.markNoticeFailed(db, notificationId, error);
    },
  };
}

export type AlertDeliveryActivities = ReturnType<typeof createAlertDeliveryActivities>;
