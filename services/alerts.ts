// Alerts: where they go (channels: webhooks and e-mail), what they are about (incidents), and
// how they get there. An incident opens once per kind and subject (a partial unique index) and
// sends one "firing" notice per channel; when it clears it sends one "resolved" notice. The
// notices are rows (an outbox) written in the same transaction as the incident change; delivery
// is a Temporal workflow per notice (workflows/alerts.ts) whose activity retries failed POSTs and
// SMTP sends. The CLI and the web console call the functions here; the alert activities call the
// transition functions (recordJobOutcome, sweepStaleness) and dispatchPendingNotifications.
//
// Every string that reaches a payload may come from a client (error messages quote borg's output):
// payloads are JSON (encoded by JSON.stringify), e-mails are plain text with control characters
// removed from every field, links are built with encodeURIComponent.
import { randomUUID } from 'node:crypto';
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, WorkflowExecutionAlreadyStartedError, type Client as TemporalClient, type ScheduleOptions } from '@temporalio/client';
import { and, asc, desc, eq, inArray, isNull, isNotNull, lt, sql } from 'drizzle-orm';
import { createTransport } from 'nodemailer';
import { z } from 'zod';
import type { Db } from '../db/client.js';
import {
  alertChannelsTable,
  alertNotificationsTable,
  clientsTable,
  incidentsTable,
  jobsTable,
  policiesTable,
  repositoriesTable,
  type AlertChannel,
  type AlertPayload,
  type Incident,
} from '../db/schema.js';
import { findClientById } from '../db/queries/clients.js';
import { findJob } from '../db/queries/jobs.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import type { MasterKey } from '../infra/secrets.js';
import { temporalWorkflowUrl } from '../infra/temporal.js';
import type { ServiceDeps } from './deps.js';
import { invalid, notFound } from './errors.js';

// ---------------------------------------------------------------------------------------------
// Channels

const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);

const httpUrl = z
  .string()
  .trim()
  .max(2000)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && noControl(s);
    } catch {
      return false;
    }
  }, 'must be an http:// or https:// URL');

const smtpUrl = z
  .string()
  .trim()
  .max(2000)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'smtp:' || u.protocol === 'smtps:') && u.hostname !== '' && noControl(s);
    } catch {
      return false;
    }
  }, 'must be an smtp:// or smtps:// URL, e.g. smtp://mail.example.com:587 or smtps://user:password@mail.example.com');

const emailAddress = z.email('must be an e-mail address').max(320);

export const addWebhookChannelInput = z.object({ url: httpUrl });
export const addEmailChannelInput = z.object({
  smtpUrl,
  from: emailAddress,
  /** One address or several (a list, or one string with commas). */
  to: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(emailAddress).min(1, 'at least one recipient').max(50)),
});

/** What a channel sends to; sealed in alert_channels.target_sealed. */
export type AlertChannelTarget = { kind: 'webhook'; url: string } | { kind: 'email'; smtpUrl: string; from: string; to: string[] };

export type AlertChannelView = Omit<AlertChannel, 'targetSealed'>;

const channelContext = (id: string) => `alert-channel:${id}`;
const channelId = z.string().uuid('not a channel id (see `borgcube alert list`)');

function viewOf(row: AlertChannel): AlertChannelView {
  const { targetSealed: _t, ...view } = row;
  return view;
}

/** A label that shows where a channel points without its secrets (webhook paths often are one). */
export function channelLabel(t: AlertChannelTarget): string {
  if (t.kind === 'webhook') {
    const u = new URL(t.url);
    return `${u.protocol}//${u.host}${u.pathname === '/' && !u.search ? '/' : '/…'}`;
  }
  const u = new URL(t.smtpUrl);
  return `${t.to.join(', ')} via ${u.protocol}//${u.host}`;
}

async function insertChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, target: AlertChannelTarget): Promise<AlertChannelView> {
  const id = randomUUID();
  const row = (
    await deps.db
      .insert(alertChannelsTable)
      .values({ id, kind: target.kind, label: channelLabel(target), targetSealed: deps.masterKey().seal(JSON.stringify(target), channelContext(id)) })
      .returning()
  )[0]!;
  deps.log.info({ channel: id, kind: target.kind, label: row.label }, 'alert channel added');
  return viewOf(row);
}

export async function addWebhookChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, raw: z.input<typeof addWebhookChannelInput>): Promise<AlertChannelView> {
  const input = addWebhookChannelInput.parse(raw);
  return insertChannel(deps, { kind: 'webhook', url: input.url });
}

export async function addEmailChannel(deps: Pick<ServiceDeps, 'db' | 'log' | 'masterKey'>, raw: z.input<typeof addEmailChannelInput>): Promise<AlertChannelView> {
  const input = addEmailChannelInput.parse(raw);
  return insertChannel(deps, { kind: 'email', smtpUrl: input.smtpUrl, from: input.from, to: input.to });
}

export async function listAlertChannels(deps: Pick<ServiceDeps, 'db'>): Promise<AlertChannelView[]> {
  const rows = await deps.db.select().from(alertChannelsTable).orderBy(asc(alertChannelsTable.createdAt));
  return rows.map(viewOf);
}

async function findChannel(db: Db, id: string): Promise<AlertChannel> {
  if (!channelId.safeParse(id).success) throw invalid(`${JSON.stringify(id)} is not a channel id (see \`borgcube alert list\`)`);
  const row = (await db.select().from(alertChannelsTable).where(eq(alertChannelsTable.id, id)))[0];
  if (!row) throw notFound('alert channel', id);
  return row;
}

export async function removeAlertChannel(deps: Pick<ServiceDeps, 'db' | 'log'>, id: string): Promise<void> {
  await findChannel(deps.db, id);
  await deps.db.delete(alertChannelsTable).where(eq(alertChannelsTable.id, id));
  deps.log.info({ channel: id }, 'alert channel removed');
}

/** A disabled channel keeps its configuration but gets no new notices. */
export async function setAlertChannelEnabled(deps: Pick<ServiceDeps, 'db'>, id: string, enabled: boolean): Promise<AlertChannelView> {
  await findChannel(deps.db, id);
  const row = (await deps.db.update(alertChannelsTable).set({ enabled }).where(eq(alertChannelsTable.id, id)).returning())[0]!;
  return viewOf(row);
}

export function openChannelTarget(masterKey: MasterKey, row: AlertChannel): AlertChannelTarget {
  return JSON.parse(masterKey.openText(row.targetSealed, channelContext(row.id))) as AlertChannelTarget;
}

/** Sends a test notice to one channel or all of them, now (not through Temporal); reports each. */
export async function testAlertChannels(deps: Pick<ServiceDeps, 'db' | 'config' | 'masterKey'>, id?: string): Promise<Array<{ channel: AlertChannelView; ok: boolean; error?: string }>> {
  const rows = id ? [await findChannel(deps.db, id)] : await deps.db.select().from(alertChannelsTable).orderBy(asc(alertChannelsTable.createdAt));
  const payload: AlertPayload = {
    kind: 'test',
    state: 'firing',
    subject: 'BorgCube',
    summary: 'a test notice from `borgcube alert test`: this channel works',
    link: `${deps.config.web.publicUrl}/`,
    temporalLink: null,
    time: new Date().toISOString(),
    incidentId: null,
    openedAt: null,
    resolvedAt: null,
  };
  const out: Array<{ channel: AlertChannelView; ok: boolean; error?: string }> = [];
  for (const row of rows) {
    try {
      await sendAlert(openChannelTarget(deps.masterKey(), row), payload);
      out.push({ channel: viewOf(row), ok: true });
    } catch (err) {
      out.push({ channel: viewOf(row), ok: false, error: (err as Error).message });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Delivery

/** A delivery that failed; `permanent` ones are not worth retrying (e.g. HTTP 404, bad recipient). */
export class AlertDeliveryError extends Error {
  override name = 'AlertDeliveryError';
  constructor(
    message: string,
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

const oneLine = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();

/** The plain-text e-mail of a notice: subject and body, every field on one line of its own. */
export function alertEmail(p: AlertPayload): { subject: string; text: string } {
  const subject = oneLine(`[BorgCube] ${p.state === 'firing' ? 'FIRING' : 'RESOLVED'} ${p.kind}: ${p.subject}`).slice(0, 250);
  const lines: Array<[string, string | null]> = [
    ['State', p.state],
    ['Kind', p.kind],
    ['Subject', p.subject],
    ['Summary', p.summary],
    ['Console', p.link],
    ['Temporal', p.temporalLink],
    ['Opened', p.openedAt],
    ['Resolved', p.resolvedAt],
    ['Time', p.time],
  ];
  const text = lines
    .filter(([, v]) => v)
    .map(([k, v]) => `${k}: ${oneLine(v!)}`)
    .join('\n');
  return { subject, text: `${text}\n` };
}

export interface SendOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Sends one notice: a JSON POST, or an e-mail through the channel's SMTP server. */
export async function sendAlert(target: AlertChannelTarget, payload: AlertPayload, opts: SendOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  if (target.kind === 'webhook') {
    const signal = opts.signal ? AbortSignal.any([opts.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(target.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'BorgCube-alerts/1' },
        body: JSON.stringify(payload),
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new AlertDeliveryError(`webhook ${channelLabel(target)}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, false);
    }
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return;
    // Redirects are not followed (a POST body must not wander); 4xx other than 408/429 will not heal by retrying.
    const permanent = res.status >= 300 && res.status < 500 && res.status !== 408 && res.status !== 429;
    throw new AlertDeliveryError(`webhook ${channelLabel(target)} answered HTTP ${res.status}`, permanent);
  }
  const u = new URL(target.smtpUrl);
  const secure = u.protocol === 'smtps:';
  const transport = createTransport({
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : secure ? 465 : 25,
    secure,
    auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs * 2,
  });
  const { subject, text } = alertEmail(payload);
  try {
    await transport.sendMail({ from: target.from, to: target.to, subject, text });
  } catch (err) {
    const e = err as { responseCode?: number; message?: string };
    // 5xx answers (bad recipient, relay refused) are permanent; connection trouble and 4xx are not.
    throw new AlertDeliveryError(`e-mail via ${u.host}: ${oneLine(e.message ?? String(err)).slice(0, 300)}`, typeof e.responseCode === 'number' && e.responseCode >= 500);
  } finally {
    transport.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Incidents

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
type AlertDeps = { db: Db; config: Config; log: Logger };

export type IncidentKind = Incident['kind'];

interface OpenSpec {
  kind: IncidentKind;
  subjectKey: string;
  subject: string;
  summary: string;
  /** Console path (e.g. /jobs/<id>) for the link. */
  path: string;
  clientId?: string | null;
  repositoryId?: string | null;
  policyId?: string | null;
  jobId?: string | null;
}

const seg = encodeURIComponent;

function payloadOf(config: Config, inc: Incident, state: 'firing' | 'resolved', path: string): AlertPayload {
  const jobId = state === 'resolved' ? (inc.resolvedByJobId ?? inc.jobId) : inc.jobId;
  return {
    kind: inc.kind,
    state,
    subject: inc.subject,
    summary: state === 'resolved' ? (inc.resolveSummary ?? 'resolved') : inc.summary,
    link: `${config.web.publicUrl}${path}`,
    temporalLink: jobId ? temporalWorkflowUrl(config, jobId) : null,
    time: new Date().toISOString(),
    incidentId: inc.id,
    openedAt: inc.openedAt.toISOString(),
    resolvedAt: inc.resolvedAt?.toISOString() ?? null,
  };
}

async function notify(tx: Tx, config: Config, inc: Incident, state: 'firing' | 'resolved', path: string): Promise<string[]> {
  const channels = await tx.select({ id: alertChannelsTable.id }).from(alertChannelsTable).where(eq(alertChannelsTable.enabled, true));
  if (!channels.length) return [];
  const payload = payloadOf(config, inc, state, path);
  const rows = await tx
    .insert(alertNotificationsTable)
    .values(channels.map((c) => ({ incidentId: inc.id, channelId: c.id, event: state, payload })))
    .onConflictDoNothing()
    .returning({ id: alertNotificationsTable.id });
  return rows.map((r) => r.id);
}

/** Opens the incident unless one of its kind is already open for the subject; returns new notices. */
async function openIncident(tx: Tx, config: Config, spec: OpenSpec): Promise<string[]> {
  const inserted = await tx
    .insert(incidentsTable)
    .values({
      kind: spec.kind,
      subjectKey: spec.subjectKey,
      subject: spec.subject,
      summary: spec.summary.slice(0, 2000),
      clientId: spec.clientId ?? null,
      repositoryId: spec.repositoryId ?? null,
      policyId: spec.policyId ?? null,
      jobId: spec.jobId ?? null,
    })
    .onConflictDoNothing()
    .returning();
  const inc = inserted[0];
  return inc ? notify(tx, config, inc, 'firing', spec.path) : [];
}

/** Resolves the open incidents of these kinds and subjects; returns new notices. */
async function resolveIncidents(tx: Tx, config: Config, spec: { kinds: IncidentKind[]; subjectKeys: string[]; summary: string; path: (inc: Incident) => string; jobId?: string | null }): Promise<string[]> {
  if (!spec.subjectKeys.length || !spec.kinds.length) return [];
  const resolved = await tx
    .update(incidentsTable)
    .set({ resolvedAt: new Date(), resolveSummary: spec.summary.slice(0, 2000), resolvedByJobId: spec.jobId ?? null })
    .where(and(inArray(incidentsTable.kind, spec.kinds), inArray(incidentsTable.subjectKey, spec.subjectKeys), isNull(incidentsTable.resolvedAt)))
    .returning();
  const ids: string[] = [];
  for (const inc of resolved) ids.push(...(await notify(tx, config, inc, 'resolved', spec.path(inc))));
  return ids;
}

/**
 * After a job ended: a failed or violating backup/prune opens the client's incident; a successful
 * backup resolves it and the staleness of the policies it satisfies; a check opens or resolves
 * its repository's. Returns the ids of the notices to deliver.
 */
export async function recordJobOutcome(deps: AlertDeps, jobId: string): Promise<string[]> {
  const { db, config } = deps;
  const job = await findJob(db, jobId);
  if (!job || job.state === 'running' || job.state === 'cancelled') return [];
  const client = job.clientId ? await findClientById(db, job.clientId) : undefined;
  const repo = await findRepositoryById(db, job.repositoryId);
  const repoName = repo?.name ?? job.repositoryId;
  const jobPath = `/jobs/${seg(job.id)}`;
  return db.transaction(async (tx) => {
    const ids: string[] = [];
    if ((job.kind === 'backup' || job.kind === 'prune') && client) {
      const subjectKey = `client:${client.id}`;
      if (job.state === 'failed' || job.state === 'violation') {
        const what = job.state === 'violation' ? 'was stopped on a policy violation' : 'failed';
        ids.push(
          ...(await openIncident(tx, config, {
            kind: job.state === 'violation' ? 'violation' : 'job-failed',
            subjectKey,
            subject: `client ${client.name}`,
            summary: `${job.kind} of ${client.name} into ${repoName} ${what}: ${job.error ?? job.state}`,
            path: jobPath,
            clientId: client.id,
            repositoryId: job.repositoryId,
            policyId: job.policyId,
            jobId: job.id,
          })),
        );
      } else if (job.kind === 'backup') {
        const summary = `backup ${job.archiveName ?? job.id} of ${client.name} into ${repoName} succeeded`;
        ids.push(...(await resolveIncidents(tx, config, { kinds: ['job-failed', 'violation'], subjectKeys: [subjectKey], summary, path: () => jobPath, jobId: job.id })));
        const satisfied = await tx
          .select({ id: policiesTable.id })
          .from(policiesTable)
          .where(and(eq(policiesTable.clientId, client.id), eq(policiesTable.repositoryId, job.repositoryId)));
        ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: satisfied.map((p) => `policy:${p.id}`), summary, path: () => jobPath, jobId: job.id })));
      }
    }
    if (job.kind === 'check' && repo) {
      const subjectKey = `repository:${repo.id}`;
      if (job.state === 'failed' || job.state === 'violation') {
        ids.push(
          ...(await openIncident(tx, config, {
            kind: 'check-failed',
            subjectKey,
            subject: `repository ${repo.name}`,
            summary: `borg check of ${repo.name} failed: ${job.error ?? 'see the job log'}`,
            path: jobPath,
            repositoryId: repo.id,
            policyId: job.policyId,
            jobId: job.id,
          })),
        );
      } else {
        ids.push(...(await resolveIncidents(tx, config, { kinds: ['check-failed'], subjectKeys: [subjectKey], summary: `borg check of ${repo.name} passed`, path: () => jobPath, jobId: job.id })));
      }
    }
    return ids;
  });
}

/**
 * Staleness: a policy whose client has had no successful backup into its repository for longer
 * than its threshold (counted from the policy's creation when there was none) opens a `stale`
 * incident; one that is fresh again, paused or removed resolves it. Returns new notices.
 */
export async function sweepStaleness(deps: AlertDeps, now = new Date()): Promise<string[]> {
  const { db, config } = deps;
  const lastSuccess = db
    .select({ clientId: jobsTable.clientId, repositoryId: jobsTable.repositoryId, at: sql<Date>`max(${jobsTable.finishedAt})`.as('at') })
    .from(jobsTable)
    .where(and(eq(jobsTable.kind, 'backup'), eq(jobsTable.state, 'succeeded')))
    .groupBy(jobsTable.clientId, jobsTable.repositoryId)
    .as('last_success');
  const rows = await db
    .select({ policy: policiesTable, clientName: clientsTable.name, repositoryName: repositoriesTable.name, lastAt: lastSuccess.at })
    .from(policiesTable)
    .innerJoin(clientsTable, eq(clientsTable.id, policiesTable.clientId))
    .innerJoin(repositoriesTable, eq(repositoriesTable.id, policiesTable.repositoryId))
    .leftJoin(lastSuccess, and(eq(lastSuccess.clientId, policiesTable.clientId), eq(lastSuccess.repositoryId, policiesTable.repositoryId)));
  return db.transaction(async (tx) => {
    const ids: string[] = [];
    const fresh: string[] = [];
    const paused: string[] = [];
    for (const r of rows) {
      const p = r.policy;
      const key = `policy:${p.id}`;
      if (p.paused) {
        paused.push(key);
        continue;
      }
      const last = r.lastAt ? new Date(r.lastAt) : undefined;
      const since = last ?? p.createdAt;
      const ageHours = (now.getTime() - since.getTime()) / 3_600_000;
      if (ageHours <= p.staleAfterHours) {
        fresh.push(key);
        continue;
      }
      const summary = last
        ? `no successful backup of ${r.clientName} into ${r.repositoryName} for ${Math.floor(ageHours)} h (last at ${last.toISOString()}); policy ${p.name} allows ${p.staleAfterHours} h`
        : `no successful backup of ${r.clientName} into ${r.repositoryName} since policy ${p.name} was created ${Math.floor(ageHours)} h ago; it allows ${p.staleAfterHours} h`;
      ids.push(
        ...(await openIncident(tx, config, {
          kind: 'stale',
          subjectKey: key,
          subject: `client ${r.clientName} (policy ${p.name})`,
          summary,
          path: `/clients/${seg(r.clientName)}`,
          clientId: p.clientId,
          repositoryId: p.repositoryId,
          policyId: p.id,
        })),
      );
    }
    const clientNames = new Map((await tx.select({ id: clientsTable.id, name: clientsTable.name }).from(clientsTable)).map((c) => [c.id, c.name]));
    const pathOf = (inc: Incident) => {
      const name = inc.clientId ? clientNames.get(inc.clientId) : undefined;
      return name ? `/clients/${seg(name)}` : '/';
    };
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: fresh, summary: 'a backup succeeded within the threshold again', path: pathOf })));
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: paused, summary: 'the policy was paused', path: pathOf })));
    // Incidents of removed policies (policy_id was set to null when the policy went away).
    const orphans = await tx
      .select({ subjectKey: incidentsTable.subjectKey })
      .from(incidentsTable)
      .where(and(eq(incidentsTable.kind, 'stale'), isNull(incidentsTable.resolvedAt), isNull(incidentsTable.policyId)));
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: orphans.map((o) => o.subjectKey), summary: 'the policy was removed', path: pathOf })));
    return ids;
  });
}

export const deliverAlertWorkflowId = (notificationId: string) => `alert-${notificationId}`;

/**
 * Starts a delivery workflow for every notice that has none yet (idempotent: the workflow id is
 * the notice's). Returns how many were started.
 */
export async function dispatchPendingNotifications(deps: AlertDeps & { temporal: TemporalClient }, ids?: string[]): Promise<number> {
  const { db, config, temporal, log } = deps;
  const where = and(eq(alertNotificationsTable.state, 'pending'), isNull(alertNotificationsTable.dispatchedAt), ids ? inArray(alertNotificationsTable.id, ids) : undefined);
  const rows = await db.select({ id: alertNotificationsTable.id }).from(alertNotificationsTable).where(where).orderBy(asc(alertNotificationsTable.createdAt)).limit(500);
  let started = 0;
  for (const { id } of rows) {
    try {
      await temporal.workflow.start('deliverAlert', { workflowId: deliverAlertWorkflowId(id), taskQueue: config.temporal.taskQueue, args: [{ notificationId: id }] });
      started++;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    await db.update(alertNotificationsTable).set({ dispatchedAt: new Date() }).where(eq(alertNotificationsTable.id, id));
  }
  if (started) log.info({ started }, 'alert deliveries started');
  return started;
}

/** Notices whose delivery workflow was started long ago but that are still pending (lost starts). */
export async function redispatchStuckNotifications(db: Db, olderThan: Date): Promise<void> {
  await db
    .update(alertNotificationsTable)
    .set({ dispatchedAt: null })
    .where(and(eq(alertNotificationsTable.state, 'pending'), isNotNull(alertNotificationsTable.dispatchedAt), lt(alertNotificationsTable.dispatchedAt, olderThan)));
}

// ---------------------------------------------------------------------------------------------
// Reading incidents (CLI, console)

export const listIncidentsInput = z.object({
  /** open: not resolved yet; resolved: only resolved ones; all: both. */
  state: z.enum(['open', 'resolved', 'all']).default('open'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export interface IncidentView extends Incident {
  state: 'firing' | 'resolved';
  notices: Array<{ channelId: string; event: string; state: string; attempts: number; lastError: string | null; sentAt: Date | null }>;
}

export async function listIncidents(deps: Pick<ServiceDeps, 'db'>, raw: z.input<typeof listIncidentsInput> = {}): Promise<IncidentView[]> {
  const input = listIncidentsInput.parse(raw);
  const rows = await deps.db
    .select()
    .from(incidentsTable)
    .where(input.state === 'open' ? isNull(incidentsTable.resolvedAt) : input.state === 'resolved' ? isNotNull(incidentsTable.resolvedAt) : undefined)
    .orderBy(input.state === 'resolved' ? desc(incidentsTable.resolvedAt) : desc(incidentsTable.openedAt))
    .limit(input.limit);
  const notices = rows.length
    ? await deps.db
        .select()
        .from(alertNotificationsTable)
        .where(inArray(alertNotificationsTable.incidentId, rows.map((r) => r.id)))
        .orderBy(asc(alertNotificationsTable.createdAt))
    : [];
  return rows.map((r) => ({
    ...r,
    state: r.resolvedAt ? 'resolved' : 'firing',
    notices: notices
      .filter((n) => n.incidentId === r.id)
      .map((n) => ({ channelId: n.channelId, event: n.event, state: n.state, attempts: n.attempts, lastError: n.lastError, sentAt: n.sentAt })),
  }));
}

/** Notices that could not be delivered (for the console's attention list and `alert list`). */
export async function failedNotificationCount(deps: Pick<ServiceDeps, 'db'>): Promise<number> {
  const r = await deps.db
    .select({ n: sql<number>`count(*)::int` })
    .from(alertNotificationsTable)
    .where(eq(alertNotificationsTable.state, 'failed'));
  return Number(r[0]?.n ?? 0);
}

// ---------------------------------------------------------------------------------------------
// The sweep's own Temporal Schedule (created by the worker at start, one per main task queue)

export const alertSweepScheduleId = (config: Pick<Config, 'temporal'>) => `alerts-sweep-${config.temporal.taskQueue}`;

/** Creates the periodic staleness sweep, or brings an existing one to the configured interval. */
export async function ensureAlertSweepSchedule(temporal: TemporalClient, config: Pick<Config, 'temporal' | 'alerts'>): Promise<string> {
  const scheduleId = alertSweepScheduleId(config);
  const opts: ScheduleOptions = {
    scheduleId,
    spec: { intervals: [{ every: config.alerts.sweepInterval as `${number}${'s' | 'm' | 'h'}` }] },
    action: { type: 'startWorkflow', workflowType: 'alertsSweep', args: [], taskQueue: config.temporal.taskQueue, workflowId: `${scheduleId}-run`, workflowRunTimeout: '10m' },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1m' },
    memo: { purpose: 'BorgCube staleness sweep and alert redelivery' },
  };
  try {
    await temporal.schedule.create(opts);
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await temporal.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec: opts.spec, action: opts.action, policies: { ...prev.policies, ...opts.policies } }));
  }
  return scheduleId;
}

/** Runs the sweep now (`borgcube alert sweep`): staleness incidents and undelivered notices. */
export async function runAlertSweepNow(deps: Pick<ServiceDeps, 'config' | 'temporal'>): Promise<string> {
  const temporal = await deps.temporal();
  const id = await ensureAlertSweepSchedule(temporal, deps.config);
  await temporal.schedule.getHandle(id).trigger(ScheduleOverlapPolicy.SKIP);
  return id;
}
