// Incidents: what alerts are about. An incident opens once per kind and subject (a partial unique
// index) and sends one "firing" notice per channel; when it clears it sends one "resolved" notice.
// The notices are rows (an outbox) written in the same transaction as the incident change;
// services/alert-dispatch.ts starts their delivery. Links are built with encodeURIComponent.
import { z } from 'zod';
import type { Db } from '../db/client.js';
import * as alertsQ from '../db/queries/alerts.js';
import { findClientById } from '../db/queries/clients.js';
import { findJob, isActive } from '../db/queries/jobs.js';
import { allClientNames } from '../db/queries/names.js';
import { findRepositoryById } from '../db/queries/repositories.js';
import type { AlertPayload, Incident } from '../db/schema.js';
import type { Config } from '../infra/config.js';
import type { Logger } from '../infra/logger.js';
import { temporalWorkflowUrl } from '../infra/temporal.js';
import type { ServiceDeps } from './deps.js';

export type AlertDeps = { db: Db; config: Config; log: Logger };

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

function notify(tx: Db, config: Config, inc: Incident, state: 'firing' | 'resolved', path: string): Promise<string[]> {
  return alertsQ.insertNotices(tx, inc.id, state, payloadOf(config, inc, state, path));
}

/** Opens the incident unless one of its kind is already open for the subject; returns new notices. */
async function openIncident(tx: Db, config: Config, spec: OpenSpec): Promise<string[]> {
  const inc = await alertsQ.insertIncidentUnlessOpen(tx, {
      kind: spec.kind,
      subjectKey: spec.subjectKey,
      subject: spec.subject,
      summary: spec.summary.slice(0, 2000),
      clientId: spec.clientId ?? null,
      repositoryId: spec.repositoryId ?? null,
      policyId: spec.policyId ?? null,
    jobId: spec.jobId ?? null,
  });
  return inc ? notify(tx, config, inc, 'firing', spec.path) : [];
}

/** Resolves the open incidents of these kinds and subjects; returns new notices. */
async function resolveIncidents(tx: Db, config: Config, spec: { kinds: IncidentKind[]; subjectKeys: string[]; summary: string; path: (inc: Incident) => string; jobId?: string | null }): Promise<string[]> {
  if (!spec.subjectKeys.length || !spec.kinds.length) return [];
  const resolved = await alertsQ.resolveOpenIncidents(tx, spec, { summary: spec.summary.slice(0, 2000), jobId: spec.jobId ?? null });
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
  if (!job || isActive(job.state) || job.state === 'cancelled') return [];
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
        const satisfied = await alertsQ.policyIdsOf(tx, client.id, job.repositoryId);
        ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: satisfied.map((id) => `policy:${id}`), summary, path: () => jobPath, jobId: job.id })));
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
  const rows = await alertsQ.policiesWithLastSuccess(db);
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
    const clientNames = await allClientNames(tx);
    const pathOf = (inc: Incident) => {
      const name = inc.clientId ? clientNames.get(inc.clientId) : undefined;
      return name ? `/clients/${seg(name)}` : '/';
    };
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: fresh, summary: 'a backup succeeded within the threshold again', path: pathOf })));
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: paused, summary: 'the policy was paused', path: pathOf })));
    // Incidents of removed policies (policy_id was set to null when the policy went away).
    const orphans = await alertsQ.openStaleSubjectsWithoutPolicy(tx);
    ids.push(...(await resolveIncidents(tx, config, { kinds: ['stale'], subjectKeys: orphans, summary: 'the policy was removed', path: pathOf })));
    return ids;
  });
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
  const rows = await alertsQ.listIncidents(deps.db, input);
  const notices = await alertsQ.noticesOf(
    deps.db,
    rows.map((r) => r.id),
  );
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
  return alertsQ.failedNoticeCount(deps.db);
}
