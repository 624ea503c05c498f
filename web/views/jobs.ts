// The jobs pages: the filterable list with the start form, and the live job page (static/job.js
// keeps it current).
import { html } from 'hono/html';
import type { z } from 'zod';
import { hasRole, type Principal } from '../../services/auth.js';
import type { withLiveProgress } from '../../services/dashboard.js';
import { jobKinds, jobStates, type getJobDetails, type jobLogTail, type JobView, type listJobsInput } from '../../services/jobs.js';
import { bytes, duration, when } from './format.js';
import { csrfField, layout, select, stateBadge, type Html } from './layout.js';
import { progressBar } from './progress.js';

type JobQuery = z.output<typeof listJobsInput>;

/** Beyond this many clients a drop-down is no help (and costs the page its speed): a text field names the client. */
export const CLIENT_SELECT_MAX = 500;

/** A client picker: a drop-down of `names`, or a text field when there are more than CLIENT_SELECT_MAX. */
function clientField(names: string[], current: string | undefined, extra: { empty?: string; id: string }): Html {
  if (names.length <= CLIENT_SELECT_MAX) return select('client', names, current, extra);
  return html`<input type="text" name="client" id="${extra.id}" value="${current ?? ''}" placeholder="${extra.empty ?? 'client name'}" autocomplete="off">`;
}
type JobDetails = Awaited<ReturnType<typeof getJobDetails>>;
type LiveProgress = Awaited<ReturnType<typeof withLiveProgress>>;
type LogLines = Awaited<ReturnType<typeof jobLogTail>>;

export function jobsListPage(p: Principal, q: JobQuery, page: { jobs: JobView[]; nextCursor: string | null }, clientNames: string[], repoNames: string[]): Html {
  const nextParams = new URLSearchParams(Object.entries({ client: q.client, repository: q.repository, state: q.state, kind: q.kind, limit: String(q.limit), cursor: page.nextCursor ?? undefined }).filter((e): e is [string, string] => Boolean(e[1])));
  const body = html`<h1>Jobs</h1>
${hasRole(p.user.role, 'operator') ? startForm(p, clientNames, repoNames) : ''}
<form method="get" action="/jobs" class="filters">
<label>Client ${clientField(clientNames, q.client, { empty: 'any', id: 'filter-client' })}</label>
<label>Repository ${select('repository', repoNames, q.repository, { empty: 'any', id: 'filter-repository' })}</label>
<label>State ${select('state', jobStates, q.state, { empty: 'any', id: 'filter-state' })}</label>
<label>Kind ${select('kind', jobKinds, q.kind, { empty: 'any', id: 'filter-kind' })}</label>
<button type="submit">Filter</button>
</form>
${page.jobs.length
? html`<table class="grid" id="jobs">
<thead><tr><th>Job</th><th>Kind</th><th>Client</th><th>Repository</th><th>State</th><th>Phase</th><th>Created</th><th>Duration</th><th>Archive</th></tr></thead>
<tbody>${page.jobs.map(
    (j) => html`<tr><td><a href="/jobs/${j.id}">${j.id.slice(0, 8)}</a></td><td>${j.kind}</td><td>${j.clientName ?? '—'}</td><td>${j.repositoryName ?? '—'}</td>
<td>${stateBadge(j.state)}${queuePosition(j)}</td><td>${j.phase}</td><td>${when(j.createdAt)}</td>
<td>${j.finishedAt ? duration((j.finishedAt.getTime() - (j.startedAt ?? j.createdAt).getTime()) / 1000) : '—'}</td><td>${j.archiveName ?? j.restore?.archiveName ?? '—'}</td></tr>`,
  )}</tbody></table>`
: html`<p class="muted">No jobs match.</p>`}
<nav class="pager">${q.cursor ? html`<a href="/jobs">First page</a>` : ''} ${page.nextCursor ? html`<a rel="next" id="next-page" href="/jobs?${nextParams.toString()}">Older jobs →</a>` : ''}</nav>`;
  return layout({ title: 'Jobs', principal: p, active: 'jobs', body });
}

export function jobPage(p: Principal, d: JobDetails, live: LiveProgress, lines: LogLines): Html {
  const lastSeq = lines.at(-1)?.seq ?? 0;
  const pr = d.live?.progress;
  const running = d.state === 'running';
  const active = running || d.state === 'queued';
  const body = html`<section id="job" data-job-id="${d.id}" data-last-seq="${lastSeq}" data-state="${d.state}" data-estimate="${live.estimate ?? ''}" data-started="${(d.startedAt ?? d.createdAt).toISOString()}">
<h1>${d.kind} of ${d.clientId ? (d.clientName ?? '(removed client)') : (d.repositoryName ?? '(removed repository)')} <span id="job-state">${stateBadge(d.state)}</span></h1>
${d.state === 'queued'
? html`<p class="muted" id="queue-position" data-position="${d.queuePosition ?? ''}">Waiting for a slot under the concurrency limits${d.queuePosition ? html` — position <strong>${d.queuePosition}</strong> in its storage host's queue` : ''}. Nothing has run yet; cancelling it now ends it with nothing done.</p>`
: ''}
<div class="job-head">
<dl class="facts">
<dt>Job</dt><dd><code>${d.id}</code></dd>
<dt>Client</dt><dd>${d.clientName ? html`<a href="/clients/${encodeURIComponent(d.clientName)}">${d.clientName}</a>` : '—'}</dd>
<dt>Repository</dt><dd>${d.repositoryName ? html`<a href="/repositories/${encodeURIComponent(d.repositoryName)}">${d.repositoryName}</a>` : '—'}</dd>
<dt>Archive</dt><dd id="job-archive">${d.archiveName ?? d.restore?.archiveName ?? '—'}</dd>
${d.restore ? restoreFacts(d.restore) : ''}
<dt>Phase</dt><dd id="job-phase">${d.live?.status?.phase ?? d.phase}</dd>
<dt>Created</dt><dd>${when(d.createdAt)}</dd>
<dt>Finished</dt><dd id="job-finished">${when(d.finishedAt)}</dd>
<dt>Started by</dt><dd>${d.triggeredBy ?? 'schedule'}</dd>
<dt>Workflow</dt><dd><a href="${d.temporalUrl}" target="_blank" rel="noopener noreferrer">open in the Temporal UI</a></dd>
</dl>
${active && hasRole(p.user.role, 'operator')
? html`<form method="post" action="/jobs/${d.id}/cancel" id="cancel-form" data-confirm="${running ? `Cancel this job? The ${d.kind} stops; its cleanup still runs.` : 'Cancel this queued job? It ends without having run.'}">${csrfField(p)}<button type="submit" class="danger">Cancel job</button></form>`
: ''}
</div>
<p class="error" id="job-error" role="alert"${d.error ? '' : html` hidden`}>${d.error ?? ''}</p>

<h2>Progress</h2>
<div class="progress">
${progressBar({ ...live, estimate: d.kind === 'restore' ? (pr?.totalSize ?? null) : live.estimate, state: d.state }, 'job-progress')}
${d.kind === 'restore' ? restoreProgress(pr, d.stats) : backupProgress(pr, d.stats)}
<p class="muted small" id="live-status">${active ? 'connecting…' : ''}</p>
</div>

${d.violations.length
? html`<h2>Violations</h2><table class="grid" id="violations"><thead><tr><th>When</th><th>Kind</th><th>What the client attempted</th></tr></thead>
<tbody>${d.violations.map((v) => html`<tr><td>${when(v.createdAt)}</td><td><code>${v.kind}</code></td><td class="path">${v.detail}</td></tr>`)}</tbody></table>`
: ''}
${d.stats && !running ? statsTable(d.stats) : ''}

<h2>Log</h2>
<ol id="log" class="log">${lines.map((l) => logLine(l.seq, l.time, l.level, l.message))}</ol>
</section>`;
  return layout({ title: `Job ${d.id.slice(0, 8)}`, principal: p, active: 'jobs', body, scripts: ['job.js'] });
}

/** A queued backup's place in its storage host's queue, after its state badge. */
export function queuePosition(j: { state: string; queuePosition: number | null }): Html | string {
  return j.state === 'queued' && j.queuePosition !== null ? html` <span class="muted small" data-queue-position="${j.queuePosition}" title="place in its storage host's queue">#${j.queuePosition}</span>` : '';
}

type Progress = NonNullable<JobDetails['live']>['progress'];

function backupProgress(pr: Progress, stats: JobDetails['stats']): Html {
  return html`<dl class="facts wide">
  <dt>Read</dt><dd id="p-original">${bytes(pr?.originalSize ?? stats?.originalSize)}</dd>
  <dt>Compressed</dt><dd id="p-compressed">${bytes(pr?.compressedSize ?? stats?.compressedSize)}</dd>
  <dt>New (deduplicated)</dt><dd id="p-dedup">${bytes(pr?.deduplicatedSize ?? stats?.deduplicatedSize)}</dd>
  <dt>Files</dt><dd id="p-files">${pr?.nfiles ?? stats?.nfiles ?? '—'}</dd>
  <dt>Throughput</dt><dd id="p-rate">—</dd>
  <dt>Current path</dt><dd id="p-path" class="path">${pr?.path ?? ''}</dd>
</dl>`;
}

/** A restore's progress: bytes written of borg extract's total, items restored so far (listed by borg, or counted in the target). */
function restoreProgress(pr: Progress, stats: JobDetails['stats']): Html {
  const restored = pr?.originalSize ?? (typeof stats?.restoredBytes === 'number' ? stats.restoredBytes : undefined);
  const total = pr?.totalSize ?? (typeof stats?.restoredBytes === 'number' ? stats.restoredBytes : undefined);
  return html`<dl class="facts wide">
  <dt>Restored</dt><dd id="p-original">${bytes(restored)}</dd>
  <dt>Of</dt><dd id="p-total">${bytes(total)}</dd>
  <dt>Items</dt><dd id="p-files">${pr?.nfiles || stats?.items || '—'}</dd>
  <dt>Throughput</dt><dd id="p-rate">—</dd>
  <dt>Current path</dt><dd id="p-path" class="path">${pr?.path ?? ''}</dd>
</dl>`;
}

function restoreFacts(r: NonNullable<JobDetails['restore']>): Html {
  return html`<dt>Restore into</dt><dd id="job-target" class="path">${r.inPlace ? '/ (in place)' : r.target}</dd>
<dt>Paths</dt><dd id="job-paths" class="path">${r.paths.length ? r.paths.join(' ') : 'all'}</dd>
${r.stripComponents ? html`<dt>Strip components</dt><dd>${r.stripComponents}</dd>` : ''}`;
}

function startForm(p: Parameters<typeof csrfField>[0], clients: string[], repos: string[]): Html {
  if (!clients.length || !repos.length) return html`<p class="muted">Add a client and a repository to start backups.</p>`;
  return html`<form method="post" action="/jobs" class="card inline-form" id="start-backup">
  ${csrfField(p)}
  <strong>Back up now:</strong>
  <label>Client ${clientField(clients, undefined, { id: 'start-client' })}</label>
  <label>into ${select('repository', repos, undefined, { id: 'start-repository' })}</label>
  <button type="submit" class="primary">Start backup</button>
</form>`;
}

function logLine(seq: number, time: Date, level: string, message: string): Html {
  return html`<li data-seq="${seq}" class="lvl-${/^[A-Z]+$/.test(level) ? level.toLowerCase() : 'info'}"><time>${time.toISOString().slice(11, 19)}</time> <span class="lvl">${level}</span> <span class="msg">${message}</span></li>`;
}

function statsTable(stats: Record<string, number | string | undefined>): Html {
  const entries = Object.entries(stats).filter(([, v]) => v !== undefined);
  if (!entries.length) return html``;
  const fmt = (k: string, v: number | string | undefined) => (typeof v === 'number' && /size|bytes/i.test(k) ? bytes(v) : typeof v === 'number' && /seconds/i.test(k) ? duration(v) : String(v));
  return html`<h2>Result</h2><dl class="facts wide" id="job-stats">${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${fmt(k, v)}</dd>`)}</dl>`;
}
