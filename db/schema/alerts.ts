// Alert channels, incidents and the notifications sent for them (issue 6).
import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { clientsTable } from './clients.js';
import { jobsTable } from './jobs.js';
import { policiesTable } from './policies.js';
import { repositoriesTable } from './repositories.js';

export const alertChannelKind = pgEnum('alert_channel_kind', ['webhook', 'email']);

/** Where alerts go. The target is sealed: webhook URLs and SMTP URLs often carry credentials. */
export const alertChannelsTable = pgTable('alert_channels', {
  id: uuid('id').primaryKey().defaultRandom(),
  kind: alertChannelKind('kind').notNull(),
  /** What lists show: the webhook's origin, or the recipients and SMTP host — never a secret. */
  label: text('label').notNull(),
  /** AlertChannelTarget as JSON, sealed with the master key (context `alert-channel:<id>`). */
  targetSealed: text('target_sealed').notNull(),
  enabled: boolean('enabled').notNull().default(true),
  createdAt: createdAt(),
});
export type AlertChannel = typeof alertChannelsTable.$inferSelect;

export const incidentKind = pgEnum('incident_kind', ['job-failed', 'violation', 'check-failed', 'stale']);

/**
 * Something wrong that someone should hear about once: at most one open incident per kind and
 * subject (`client:<id>`, `repository:<id>`, `policy:<id>`); it fires when opened and sends one
 * resolve notice when it clears.
 */
export const incidentsTable = pgTable(
  'incidents',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    kind: incidentKind('kind').notNull(),
    subjectKey: text('subject_key').notNull(),
    /** For humans, as it was when the incident opened (e.g. `client web`). */
    subject: text('subject').notNull(),
    clientId: uuid('client_id').references(() => clientsTable.id, { onDelete: 'set null' }),
    repositoryId: uuid('repository_id').references(() => repositoriesTable.id, { onDelete: 'set null' }),
    policyId: uuid('policy_id').references(() => policiesTable.id, { onDelete: 'set null' }),
    /** The job whose end opened it, if any. */
    jobId: uuid('job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
    summary: text('summary').notNull(),
    openedAt: timestamp('opened_at', { withTimezone: true }).notNull().defaultNow(),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    resolveSummary: text('resolve_summary'),
    resolvedByJobId: uuid('resolved_by_job_id').references(() => jobsTable.id, { onDelete: 'set null' }),
  },
  (t) => [
    uniqueIndex('incidents_open_idx').on(t.kind, t.subjectKey).where(sql`${t.resolvedAt} is null`),
    index('incidents_opened_idx').on(t.openedAt),
  ],
);
export type Incident = typeof incidentsTable.$inferSelect;

/** The JSON body of a webhook alert (and the content of an e-mail alert). */
export interface AlertPayload {
  kind: Incident['kind'] | 'test';
  state: 'firing' | 'resolved';
  subject: string;
  summary: string;
  /** The console page of the subject or job. */
  link: string;
  /** The job's workflow in the Temporal UI, when a job is involved. */
  temporalLink: string | null;
  /** When this notice was made (ISO 8601). */
  time: string;
  incidentId: string | null;
  openedAt: string | null;
  resolvedAt: string | null;
}

export const alertNotificationState = pgEnum('alert_notification_state', ['pending', 'sent', 'failed']);

/** One notice of one incident transition to one channel (an outbox: delivery is a workflow). */
export const alertNotificationsTable = pgTable(
  'alert_notifications',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    incidentId: uuid('incident_id').notNull().references(() => incidentsTable.id, { onDelete: 'cascade' }),
    channelId: uuid('channel_id').notNull().references(() => alertChannelsTable.id, { onDelete: 'cascade' }),
    event: text('event').$type<'firing' | 'resolved'>().notNull(),
    payload: jsonb('payload').$type<AlertPayload>().notNull(),
    state: alertNotificationState('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    createdAt: createdAt(),
    /** When its delivery workflow was started (null: not yet; the sweep picks it up). */
    dispatchedAt: timestamp('dispatched_at', { withTimezone: true }),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('alert_notifications_once_idx').on(t.incidentId, t.channelId, t.event),
    index('alert_notifications_pending_idx').on(t.state, t.dispatchedAt),
  ],
);
export type AlertNotification = typeof alertNotificationsTable.$inferSelect;
