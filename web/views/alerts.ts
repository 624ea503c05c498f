// The alerts page: channels (where notices go) with their actions and add forms, open and recent
// incidents, and undeliverable notices. Incident texts quote job errors (borg output from
// clients): all of it is text, escaped by `html`.
import { html } from 'hono/html';
import type { AlertChannelView } from '../../services/alert-channels.js';
import type { IncidentView } from '../../services/incidents.js';
import { hasRole, type Principal } from '../../services/auth.js';
import { when } from './format.js';
import { fieldError, invalidAttr, problemSummary, type FormProblem } from './form-problem.js';
import { csrfField, type Html } from './layout.js';

export interface WebhookFormState {
  values: { url: string };
  problem?: FormProblem;
}
export interface EmailFormState {
  values: { smtpUrl: string; from: string; to: string };
  problem?: FormProblem;
}
export interface TestResult {
  channel: AlertChannelView;
  ok: boolean;
  error?: string;
}

export interface AlertsPageData {
  channels: AlertChannelView[];
  open: IncidentView[];
  recent: IncidentView[];
  failedNotifications: number;
}

const doneNotes: Record<string, string> = {
  'webhook-added': 'Webhook channel added. Send it a test to see that it works.',
  'email-added': 'E-mail channel added. Send it a test to see that it works.',
  enabled: 'Channel enabled: it gets the notices of new incidents and resolutions.',
  disabled: 'Channel disabled: it keeps its settings but gets no notices.',
  removed: 'Channel removed.',
  swept: 'Staleness sweep started: stale clients open incidents within seconds, and undelivered notices are sent again.',
};

export function alertsDoneNote(done: string | undefined): Html | string {
  const note = done ? doneNotes[done] : undefined;
  return note ? html`<div class="card ok" role="status" id="done-note">${note}</div>` : '';
}

export function testResults(results: TestResult[]): Html {
  if (!results.length) return html`<div class="card warn" role="status" id="test-results">There are no channels to test.</div>`;
  const ok = results.every((r) => r.ok);
  return html`<div class="card ${ok ? 'ok' : 'warn'}" role="status" id="test-results"><strong>Test notice${results.length > 1 ? 's' : ''} sent:</strong>
<ul>${results.map((r) => html`<li data-channel="${r.channel.id}">${r.channel.label}: ${r.ok ? html`<span class="badge state-succeeded">delivered</span>` : html`<span class="badge state-failed">failed</span> <span class="path">${r.error ?? ''}</span>`}</li>`)}</ul></div>`;
}

function channelRows(p: Principal, channels: AlertChannelView[]): Html {
  const operator = hasRole(p.user.role, 'operator');
  const admin = hasRole(p.user.role, 'admin');
  return html`<table class="grid" id="channels"><thead><tr><th>Kind</th><th>Where</th><th>State</th><th>Added</th><th></th></tr></thead>
<tbody>${channels.map((ch) => {
    const base = `/alerts/channels/${ch.id}`;
    return html`<tr data-channel="${ch.id}"><td>${ch.kind}</td><td class="path">${ch.label}</td>
<td>${ch.enabled ? html`<span class="badge state-succeeded" data-state="enabled">enabled</span>` : html`<span class="badge state-cancelled" data-state="disabled">disabled</span>`}</td><td>${when(ch.createdAt)}</td>
<td>${operator ? html`<form method="post" action="${base}/test" class="inline-form">${csrfField(p)}<button type="submit">Send test</button></form>` : ''}
${admin
  ? html`<form method="post" action="${base}/${ch.enabled ? 'disable' : 'enable'}" class="inline-form">${csrfField(p)}<button type="submit">${ch.enabled ? 'Disable' : 'Enable'}</button></form>
<form method="post" action="${base}/delete" class="inline-form" data-confirm="Remove this alert channel?">${csrfField(p)}<button type="submit" class="danger">Remove</button></form>`
  : ''}</td></tr>`;
  })}</tbody></table>`;
}

const webhookLabels = { url: 'URL' };
const emailLabels = { smtpUrl: 'SMTP server', from: 'From', to: 'To' };

function webhookForm(p: Principal, st: WebhookFormState | undefined): Html {
  const pr = st?.problem;
  return html`<form method="post" action="/alerts/webhook" class="card stacked" id="add-webhook">${csrfField(p)}
  <strong>Add a webhook</strong>
  ${problemSummary(pr, webhookLabels)}
  <label>URL (gets a JSON POST per incident and per resolution; kept sealed, as URLs often carry a token)
    <input name="url" required value="${st?.values.url ?? ''}" placeholder="https://hooks.example.org/borgcube?token=…" autocomplete="off"${invalidAttr(pr, 'url')}>${fieldError(pr, 'url')}</label>
  <button type="submit" class="primary">Add webhook</button>
</form>`;
}

function emailForm(p: Principal, st: EmailFormState | undefined): Html {
  const pr = st?.problem;
  const v = st?.values;
  return html`<form method="post" action="/alerts/email" class="card stacked" id="add-email">${csrfField(p)}
  <strong>Add e-mail</strong>
  ${problemSummary(pr, emailLabels)}
  <label>SMTP server <input name="smtpUrl" required value="${v?.smtpUrl ?? ''}" placeholder="smtp://mail.example.org:587 or smtps://user:password@mail.example.org" autocomplete="off"${invalidAttr(pr, 'smtpUrl')}>${fieldError(pr, 'smtpUrl')}</label>
  <label>From <input name="from" required value="${v?.from ?? ''}" placeholder="borgcube@example.org"${invalidAttr(pr, 'from')}>${fieldError(pr, 'from')}</label>
  <label>To (separate several with commas) <input name="to" required value="${v?.to ?? ''}" placeholder="ops@example.org"${invalidAttr(pr, 'to')}>${fieldError(pr, 'to')}</label>
  <button type="submit" class="primary">Add e-mail</button>
</form>`;
}

function incidentLink(i: IncidentView): Html | string {
  const job = i.resolvedAt ? (i.resolvedByJobId ?? i.jobId) : i.jobId;
  return job ? html`<a href="/jobs/${job}">job ${job.slice(0, 8)}</a>` : '';
}

function notices(i: IncidentView): Html | string {
  if (!i.notices.length) return html`<span class="muted">none (no channel)</span>`;
  const counts = new Map<string, number>();
  for (const n of i.notices) counts.set(`${n.event} ${n.state}`, (counts.get(`${n.event} ${n.state}`) ?? 0) + 1);
  const failed = i.notices.filter((n) => n.state === 'failed' && n.lastError);
  return html`${[...counts].map(([k, n]) => html`<span class="badge ${k.endsWith('failed') ? 'state-failed' : k.endsWith('sent') ? 'state-succeeded' : 'state-running'}">${k}${n > 1 ? ` ×${n}` : ''}</span>`)}
${failed.length ? html`<details><summary>why</summary><div class="path">${failed.map((n) => n.lastError).join('\n')}</div></details>` : ''}`;
}

function incidentTable(id: string, rows: IncidentView[], resolved: boolean): Html {
  return html`<table class="grid" id="${id}"><thead><tr><th>Opened</th>${resolved ? html`<th>Resolved</th>` : ''}<th>Kind</th><th>Subject</th><th>Summary</th><th>Notices</th><th></th></tr></thead>
<tbody>${rows.map(
    (i) => html`<tr class="${resolved ? '' : 'row-bad'}" data-incident="${i.id}"><td>${when(i.openedAt)}</td>${resolved ? html`<td>${when(i.resolvedAt)}</td>` : ''}
<td><span class="badge state-${resolved ? 'cancelled' : 'failed'}">${i.kind}</span></td><td>${i.subject}</td>
<td class="path">${i.summary}${resolved && i.resolveSummary ? html`<br><span class="muted">→ ${i.resolveSummary}</span>` : ''}</td><td>${notices(i)}</td><td>${incidentLink(i)}</td></tr>`,
  )}</tbody></table>`;
}

export function alertsBody(p: Principal, d: AlertsPageData, o: { note?: Html | string; webhook?: WebhookFormState; email?: EmailFormState } = {}): Html {
  const operator = hasRole(p.user.role, 'operator');
  const admin = hasRole(p.user.role, 'admin');
  return html`<h1>Alerts</h1>
${o.note ?? ''}
<section class="cards">
  <div class="card stat ${d.open.length ? 'bad' : ''}" id="open-count"><span class="n">${d.open.length}</span> open incidents</div>
  <div class="card stat ${d.failedNotifications ? 'bad' : ''}" id="failed-count"><span class="n">${d.failedNotifications}</span> undeliverable notices</div>
  <div class="card stat"><span class="n">${d.channels.filter((c) => c.enabled).length}</span> of ${d.channels.length} channels enabled</div>
</section>
${d.failedNotifications ? html`<p class="muted">Undeliverable notices gave up after their retries; the incidents below show why (“why”). Fix the channel and send it a test.</p>` : ''}

<h2>Open incidents</h2>
${d.open.length ? incidentTable('open-incidents', d.open, false) : html`<p class="muted" id="no-open-incidents">Nothing is wrong right now.</p>`}

<h2>Channels</h2>
<p class="muted">Every enabled channel gets one notice when an incident opens (a failed or violating backup or prune, a failed check, a stale client) and one when it resolves.</p>
${d.channels.length ? channelRows(p, d.channels) : html`<p class="muted">No channels yet: incidents are recorded, but nobody is told.</p>`}
${operator
  ? html`<div class="actions">
${d.channels.length ? html`<form method="post" action="/alerts/test" class="inline-form" id="test-all">${csrfField(p)}<button type="submit">Send a test to every channel</button></form>` : ''}
<form method="post" action="/alerts/sweep" class="inline-form" id="run-sweep">${csrfField(p)}<button type="submit">Run the staleness sweep now</button></form>
</div>`
  : ''}
${admin ? html`${webhookForm(p, o.webhook)}${emailForm(p, o.email)}` : ''}

<h2>Recently resolved</h2>
${d.recent.length ? incidentTable('recent-incidents', d.recent, true) : html`<p class="muted">No resolved incidents yet.</p>`}`;
}
