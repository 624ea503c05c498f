// The dashboard: the fleet at a glance (services/dashboard.ts).
import { Hono } from 'hono';
import { html } from 'hono/html';
import { getDashboard } from '../../services/dashboard.js';
import { requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { ago, bytes, duration, ratio, when } from '../views/format.js';
import { layout, stateBadge } from '../views/layout.js';
import { progressBar } from '../views/progress.js';

/** A page for people: the clients that need attention first, bounded; the Clients page lists them all. */
const CLIENT_ROWS = 200;
const RUNNING_ROWS = 25;
// Running rows render from the database (phase, the yardstick of the bar) without asking Temporal:
// dashboard.js fills the progress in from each job's WebSocket. Waiting for Temporal (up to 250 ms
// a view before) cost a loaded fleet's dashboard most of its latency budget.
const LIVE_BUDGET_MS = 0;

export function dashboardPages(deps: WebDeps) {
  const app = new Hono<WebEnv>();
  app.get('/', requireRole('viewer'), async (c) => {
    const d = await getDashboard(deps.services, new Date(), { clientRows: CLIENT_ROWS, runningRows: RUNNING_ROWS, liveBudgetMs: LIVE_BUDGET_MS, fleet: deps.dashboardFleet });
    const now = d.generatedAt;
    const body = html`<h1>Dashboard</h1>
<section class="cards">
  <div class="card stat"><span class="n">${d.counts.clients}</span> clients</div>
  <div class="card stat ${d.counts.failing ? 'bad' : ''}"><span class="n">${d.counts.failing}</span> failing</div>
  <div class="card stat ${d.counts.stale ? 'warn' : ''}"><span class="n">${d.counts.stale}</span> stale</div>
  <div class="card stat"><span class="n">${d.counts.running}</span> running</div>
  <div class="card stat ${d.counts.queued ? 'warn' : ''}" id="queued-count"><span class="n">${d.counts.queued}</span> queued</div>
  <div class="card stat"><span class="n">${d.last24h.succeeded ?? 0}</span> succeeded / <span class="n">${(d.last24h.failed ?? 0) + (d.last24h.violation ?? 0)}</span> failed in 24 h</div>
</section>

<h2>Running jobs</h2>
${d.running.length
  ? html`<table class="grid" id="running-jobs">
<thead><tr><th>Job</th><th>Client</th><th>Repository</th><th>Phase</th><th>Progress</th><th>Read</th><th>Files</th><th>Running for</th></tr></thead>
<tbody>${d.running.map(
      (j) => html`<tr data-job-id="${j.id}" data-estimate="${j.estimate ?? ''}">
  <td><a href="/jobs/${j.id}">${j.id.slice(0, 8)}</a></td><td>${j.clientName ?? '—'}</td><td>${j.repositoryName ?? '—'}</td>
  <td data-cell="phase">${j.livePhase ?? j.phase}</td><td>${progressBar(j)}</td><td data-cell="read">${bytes(j.progress?.originalSize)}</td><td data-cell="files">${j.progress?.totalSize !== undefined && !j.progress.nfiles ? '—' : (j.progress?.nfiles ?? '—')}</td>
  <td>${duration((now.getTime() - (j.startedAt ?? j.createdAt).getTime()) / 1000)}</td></tr>`,
    )}</tbody></table>${d.counts.running > d.running.length ? html`<p class="muted small" id="running-more">${d.running.length} of ${d.counts.running} running jobs shown: <a href="/jobs?state=running">all running jobs</a>.</p>` : ''}`
  : html`<p class="muted">Nothing runs right now.</p>`}
${d.queued.length
  ? html`<h2>Queued backups</h2>
<p class="muted small">Waiting for a slot under the concurrency limits (README "Concurrency limits and queueing"); each starts when a backup of its storage host or repository ends.</p>
<table class="grid" id="queued-jobs">
<thead><tr><th>Place</th><th>Job</th><th>Client</th><th>Repository</th><th>Waiting for</th></tr></thead>
<tbody>${d.queued.map(
      (j) => html`<tr data-job-id="${j.id}"><td data-queue-position="${j.queuePosition ?? ''}">${j.queuePosition ?? '—'}</td><td><a href="/jobs/${j.id}">${j.id.slice(0, 8)}</a></td><td>${j.clientName ?? '—'}</td><td>${j.repositoryName ?? '—'}</td>
  <td>${duration((now.getTime() - j.createdAt.getTime()) / 1000)}</td></tr>`,
    )}</tbody></table>`
  : ''}

<h2>Clients</h2>
${d.clients.length
  ? html`<table class="grid" id="fleet">
<thead><tr><th>Client</th><th>Host</th><th>Last backup</th><th></th><th>Last success</th><th>Size</th><th>New data</th><th>Files</th><th>Health</th></tr></thead>
<tbody>${d.clients.map(
      (cl) => html`<tr class="${cl.failing ? 'row-bad' : cl.stale ? 'row-warn' : ''}">
  <td><a href="/clients/${encodeURIComponent(cl.name)}">${cl.name}</a></td><td>${cl.host}</td>
  <td>${cl.lastJob ? html`<a href="/jobs/${cl.lastJob.id}">${ago(cl.lastJob.createdAt, now)}</a>` : 'never'}</td>
  <td>${cl.lastJob ? stateBadge(cl.lastJob.state) : ''}</td>
  <td title="${when(cl.lastSuccess?.at)}">${cl.lastSuccess ? ago(cl.lastSuccess.at, now) : 'never'}</td>
  <td>${bytes(cl.lastSuccess?.originalSize)}</td><td>${bytes(cl.lastSuccess?.deduplicatedSize)}</td><td>${cl.lastSuccess?.nfiles ?? '—'}</td>
  <td>${cl.failing ? html`<span class="badge state-failed">failing</span>` : ''}${cl.stale ? html`<span class="badge state-stale" title="no successful backup within ${cl.staleAfterHours} h">stale</span>` : ''}${!cl.failing && !cl.stale ? html`<span class="badge state-succeeded">ok</span>` : ''}</td>
</tr>`,
    )}</tbody></table>${d.counts.clients > d.clients.length ? html`<p class="muted small" id="fleet-more">${d.clients.length} of ${d.counts.clients} clients shown, those that need attention first: <a href="/clients">all clients</a>.</p>` : ''}`
  : html`<p class="muted">No clients yet. <a href="/clients/new">Add one</a>.</p>`}

<h2>Repositories</h2>
${d.repositories.length
  ? html`<table class="grid" id="repositories">
<thead><tr><th>Repository</th><th>Storage host</th><th>Archives</th><th>Original</th><th>Deduplicated</th><th>Stored</th><th>Dedup ratio</th><th>With compression</th></tr></thead>
<tbody>${d.repositories.map(
      (r) => html`<tr><td><a href="/repositories/${encodeURIComponent(r.name)}">${r.name}</a></td><td>${r.storageHost}</td><td>${r.archives}</td>
  <td>${bytes(r.stats?.originalSize)}</td><td>${bytes(r.stats?.uniqueSize)}</td><td>${bytes(r.stats?.uniqueCompressedSize)}</td><td>${ratio(r.dedupRatio)}</td><td>${ratio(r.totalRatio)}</td></tr>`,
    )}</tbody></table>`
  : html`<p class="muted">No repositories yet.</p>`}
<p class="muted small">As of ${when(now)}.</p>`;
    return c.html(layout({ title: 'Dashboard', principal: c.get('principal'), active: 'dashboard', body, scripts: d.running.length ? ['dashboard.js'] : [], refreshSeconds: d.running.length ? undefined : d.queued.length ? 15 : 60 }));
  });
  return app;
}
