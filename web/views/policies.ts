// Policy pages: the list, one policy with its schedules, and the add/edit form. Cron expressions,
// names and job errors are data: everything goes through `html`, which escapes it.
import { html } from 'hono/html';
import type { Job, RepositoryCheck } from '../../db/schema.js';
import type { Principal } from '../../services/auth.js';
import { hasRole } from '../../services/auth.js';
import { hasRetention, retentionText } from '../../services/retention.js';
import { type PolicyDetails, type PolicyOverview, type PolicyView, type ScheduleState } from '../../services/policies.js';
import { duration, when } from './format.js';
import { fieldError, invalidAttr, problemSummary, type FormProblem } from './form-problem.js';
import { hooksSection } from './hooks.js';
import { csrfField, layout, select, stateBadge, type Html } from './layout.js';

const seg = encodeURIComponent;

/** "in 3 h 2 min" / "now". */
export function until(iso: string | null | undefined, now = new Date()): string {
  if (!iso) return '—';
  const s = (new Date(iso).getTime() - now.getTime()) / 1000;
  return s <= 0 ? 'now' : `in ${duration(s)}`;
}

export function pausedBadge(paused: boolean): Html {
  return paused ? html`<span class="badge state-stale" data-state="paused">paused</span>` : html`<span class="badge state-succeeded" data-state="active">active</span>`;
}

export function checkBadge(result: string): Html {
  return html`<span class="badge ${result === 'ok' ? 'state-succeeded' : 'state-failed'}" data-state="${result}">${result}</span>`;
}

function crons(list: string[], empty: string): Html {
  return list.length ? html`${list.map((c, i) => html`${i ? html`<br>` : ''}<code>${c}</code>`)}` : html`<span class="muted">${empty}</span>`;
}

function lastJob(j: Job | null): Html {
  return j ? html`${stateBadge(j.state)} <a href="/jobs/${j.id}" title="${j.error ?? ''}">${when(j.finishedAt ?? j.createdAt)}</a>` : html`<span class="muted">never</span>`;
}

function lastCheck(c: RepositoryCheck | null): Html {
  return c ? html`${checkBadge(c.result)} ${c.jobId ? html`<a href="/jobs/${c.jobId}">${when(c.finishedAt)}</a>` : when(c.finishedAt)}` : html`<span class="muted">never</span>`;
}

function temporalLink(url: string, label = 'Temporal'): Html {
  return html`<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`;
}

export function policyTable(rows: PolicyOverview[], now = new Date()): Html {
  return html`<table class="grid" id="policies"><thead><tr><th>Policy</th><th>Client</th><th>Repository</th><th>Backup schedule</th><th>Retention</th><th>Next backup</th><th>Last backup</th><th>Last prune</th><th>Last check</th><th>State</th><th></th></tr></thead>
<tbody>${rows.map((p) => {
    const s = p.backupSchedule;
    return html`<tr data-policy="${p.name}"><td><a href="/policies/${seg(p.name)}">${p.name}</a></td>
<td><a href="/clients/${seg(p.clientName)}">${p.clientName}</a></td><td><a href="/repositories/${seg(p.repositoryName)}">${p.repositoryName}</a></td>
<td>${crons(p.backupCrons, 'trigger only')}<br><span class="muted small">${p.timezone}</span></td>
<td>${retentionText(p.retention)}</td>
<td>${s ? (s.exists ? html`<span title="${s.nextRun ?? ''}">${p.paused ? '—' : until(s.nextRun, now)}</span>` : html`<span class="badge state-failed">schedule missing</span>`) : html`<span class="muted">unknown</span>`}</td>
<td>${lastJob(p.lastBackup)}</td><td>${lastJob(p.lastPrune)}</td><td>${lastCheck(p.lastCheck)}</td>
<td>${pausedBadge(p.paused)}</td><td>${s ? temporalLink(s.temporalUrl) : ''}</td></tr>`;
  })}</tbody></table>`;
}

const doneNotes: Record<string, string> = {
  triggered: 'Backup triggered: it shows under Jobs within seconds (unless a backup of this client is already running), followed by a prune.',
  paused: 'Paused: the schedules start nothing until you resume them. Trigger now still works.',
  resumed: 'Resumed: the schedules run again.',
  saved: 'Saved; the Temporal Schedules follow.',
  added: 'Policy added; its Temporal Schedules exist now.',
};

/** A fixed note for `?done=…` after an action (never text from the request). */
export function doneNote(done: string | undefined): Html | string {
  const note = done ? doneNotes[done] : undefined;
  return note ? html`<div class="card ok" role="status" id="done-note">${note}</div>` : '';
}

function scheduleRow(kind: string, s: ScheduleState, now: Date): Html {
  return html`<tr data-kind="${kind}"><td>${kind}</td><td><code class="small">${s.id}</code></td>
<td>${s.exists ? pausedBadge(s.paused) : html`<span class="badge state-failed">missing</span>`}</td>
<td>${s.nextRuns.length ? html`${s.nextRuns.slice(0, 3).map((t, i) => html`${i ? html`<br>` : ''}${when(new Date(t))} <span class="muted small">(${until(t, now)})</span>`)}` : html`<span class="muted">—</span>`}</td>
<td>${s.actionsTaken}</td><td>${s.skippedOverlap}</td><td>${s.running.length ? s.running.length : '—'}</td><td>${temporalLink(s.temporalUrl, 'open')}</td></tr>`;
}

/** The show page's body above the edit form: actions, facts, schedules, last jobs. */
export function policyDetails(p: Principal, d: PolicyDetails, now = new Date()): Html {
  const base = `/policies/${seg(d.name)}`;
  const operator = hasRole(p.user.role, 'operator');
  const schedules = Object.entries(d.schedules).filter((e): e is [string, ScheduleState] => Boolean(e[1]));
  return html`<div class="actions" id="policy-actions">
${operator
  ? html`<form method="post" action="${base}/trigger" class="inline-form" id="trigger-policy">${csrfField(p)}<button type="submit" class="primary">Back up now</button></form>
<form method="post" action="${base}/${d.paused ? 'resume' : 'pause'}" class="inline-form" id="${d.paused ? 'resume-policy' : 'pause-policy'}">${csrfField(p)}<button type="submit">${d.paused ? 'Resume' : 'Pause'}</button></form>
<form method="post" action="${base}/prune" class="inline-form" id="prune-policy" data-confirm="Prune ${d.clientName}'s archives in ${d.repositoryName} now with this policy's rules (${retentionText(d.retention)})?">${csrfField(p)}<button type="submit"${hasRetention(d.retention) ? '' : html` disabled title="no retention rules: nothing to prune by"`}>Prune now</button></form>
<form method="post" action="${base}/check" class="inline-form" id="check-policy">${csrfField(p)}<label><input type="checkbox" name="verifyData" value="1"${d.checkVerifyData ? html` checked` : ''}> verify data</label><button type="submit">Check now</button></form>`
  : ''}
${hasRole(p.user.role, 'admin')
  ? html`<form method="post" action="${base}/delete" class="inline-form" id="remove-policy" data-confirm="Remove this policy and its schedules? Running jobs finish; archives stay.">${csrfField(p)}<button type="submit" class="danger">Remove</button></form>`
  : ''}
</div>
<dl class="facts">
  <dt>Client</dt><dd><a href="/clients/${seg(d.clientName)}">${d.clientName}</a></dd>
  <dt>Repository</dt><dd><a href="/repositories/${seg(d.repositoryName)}">${d.repositoryName}</a></dd>
  <dt>State</dt><dd id="policy-state">${pausedBadge(d.paused)}</dd>
  <dt>Backups</dt><dd>${crons(d.backupCrons, 'only when triggered')}</dd>
  <dt>Time zone</dt><dd>${d.timezone}</dd>
  <dt>Jitter</dt><dd id="policy-jitter">${d.scheduleJitterSeconds === null ? 'server default' : d.scheduleJitterSeconds === 0 ? 'none' : `up to ${d.scheduleJitterSeconds} s`}</dd>
  <dt>Retention</dt><dd>${retentionText(d.retention)}</dd>
  <dt>Prune</dt><dd>after each backup${d.pruneCrons.length ? html`, and at ${crons(d.pruneCrons, '')}` : ''}</dd>
  <dt>Checks</dt><dd>${crons(d.checkCrons, 'none scheduled')}${d.checkVerifyData ? html` <span class="muted">(with --verify-data)</span>` : ''}</dd>
  <dt>Stale after</dt><dd>${d.staleAfterHours} h without a successful backup</dd>
  <dt>Last backup</dt><dd id="last-backup">${lastJob(d.lastBackup)}</dd>
  <dt>Last prune</dt><dd id="last-prune">${lastJob(d.lastPrune)}</dd>
  <dt>Last check</dt><dd id="last-check">${lastCheck(d.lastCheck)}${d.lastCheck?.errorCount ? html` <span class="error">${d.lastCheck.errorCount} problem(s)</span>` : ''}</dd>
  <dt>Changed</dt><dd>${when(d.updatedAt)}</dd>
</dl>
<h2>Temporal Schedules</h2>
<table class="grid" id="schedules"><thead><tr><th>Kind</th><th>Schedule</th><th>State</th><th>Next runs</th><th>Runs</th><th>Skipped (overlap)</th><th>Running</th><th></th></tr></thead>
<tbody>${schedules.map(([k, s]) => scheduleRow(k, s, now))}</tbody></table>
${schedules.some(([, s]) => !s.exists) ? html`<p class="error">A schedule is missing in Temporal: <code>borgcube policy sync</code> recreates it.</p>` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// The form

/** What the form shows: strings as typed (a refused form is shown again exactly as sent). */
export interface PolicyFormValues {
  name: string;
  client: string;
  repository: string;
  backupCrons: string;
  timezone: string;
  keepWithin: string;
  keepHourly: string;
  keepDaily: string;
  keepWeekly: string;
  keepMonthly: string;
  keepYearly: string;
  pruneCrons: string;
  checkCrons: string;
  checkVerifyData: boolean;
  staleAfterHours: string;
  /** Schedule jitter as typed ("10m"); empty = the server default. */
  jitter: string;
  paused: boolean;
}

export const retentionFields = [
  ['keepHourly', 'hourly'],
  ['keepDaily', 'daily'],
  ['keepWeekly', 'weekly'],
  ['keepMonthly', 'monthly'],
  ['keepYearly', 'yearly'],
] as const;

export function formValuesOf(p: PolicyView): PolicyFormValues {
  const n = (v: number | undefined) => (v === undefined ? '' : String(v));
  return {
    name: p.name,
    client: p.clientName,
    repository: p.repositoryName,
    backupCrons: p.backupCrons.join('\n'),
    timezone: p.timezone,
    keepWithin: p.retention.keepWithin ?? '',
    keepHourly: n(p.retention.hourly),
    keepDaily: n(p.retention.daily),
    keepWeekly: n(p.retention.weekly),
    keepMonthly: n(p.retention.monthly),
    keepYearly: n(p.retention.yearly),
    pruneCrons: p.pruneCrons.join('\n'),
    checkCrons: p.checkCrons.join('\n'),
    checkVerifyData: p.checkVerifyData,
    staleAfterHours: String(p.staleAfterHours),
    jitter: p.scheduleJitterSeconds === null ? '' : `${p.scheduleJitterSeconds}s`,
    paused: p.paused,
  };
}

export function formValuesFrom(f: Record<string, string>): PolicyFormValues {
  const t = (k: string) => f[k] ?? '';
  return {
    name: t('name'),
    client: t('client'),
    repository: t('repository'),
    backupCrons: t('backupCrons'),
    timezone: t('timezone'),
    keepWithin: t('keepWithin'),
    keepHourly: t('keepHourly'),
    keepDaily: t('keepDaily'),
    keepWeekly: t('keepWeekly'),
    keepMonthly: t('keepMonthly'),
    keepYearly: t('keepYearly'),
    pruneCrons: t('pruneCrons'),
    checkCrons: t('checkCrons'),
    checkVerifyData: Boolean(f.checkVerifyData),
    staleAfterHours: t('staleAfterHours'),
    jitter: t('jitter'),
    paused: Boolean(f.paused),
  };
}

export const policyFieldLabels: Record<string, string> = {
  name: 'Name',
  client: 'Client',
  repository: 'Repository',
  backupCrons: 'Backup times',
  timezone: 'Time zone',
  keepWithin: 'Keep within',
  keepHourly: 'Keep hourly',
  keepDaily: 'Keep daily',
  keepWeekly: 'Keep weekly',
  keepMonthly: 'Keep monthly',
  keepYearly: 'Keep yearly',
  pruneCrons: 'Extra prune times',
  checkCrons: 'Check times',
  checkVerifyData: 'Verify data',
  staleAfterHours: 'Stale after',
  jitter: 'Jitter',
  paused: 'Paused',
};

export function policyForm(
  p: Principal,
  o: { action: string; isNew: boolean; values: PolicyFormValues; problem?: FormProblem; clients: string[]; repositories: string[] },
): Html {
  const v = o.values;
  const pr = o.problem;
  const err = (f: string) => fieldError(pr, f);
  const inv = (f: string) => invalidAttr(pr, f);
  const cronHelp = html`<span class="muted small">One per line: a cron expression (<code>0 3 * * *</code>; 6-7 fields with seconds/years), <code>@daily</code>, or <code>@every 6h</code>.</span>`;
  return html`<form method="post" action="${o.action}" class="stacked" id="policy-form">
  ${csrfField(p)}
  ${problemSummary(pr, policyFieldLabels)}
  ${o.isNew ? html`<label>Name <input name="name" required value="${v.name}" placeholder="web-01-nightly"${inv('name')}>${err('name')}</label>` : ''}
  <label>Client ${select('client', o.clients, v.client)}${err('client')}</label>
  <label>Repository ${select('repository', o.repositories, v.repository)}${err('repository')}</label>
  <h3>Backups</h3>
  <label>Backup times (empty: only when triggered) <textarea name="backupCrons" rows="3" placeholder="0 3 * * *"${inv('backupCrons')}>${v.backupCrons}</textarea>${cronHelp}${err('backupCrons')}</label>
  <label>Time zone of all times, and of prune's days and weeks <input name="timezone" value="${v.timezone}" placeholder="UTC" list="timezones"${inv('timezone')}>${err('timezone')}</label>
  <label>Start each scheduled run up to this much later, at random (10m, 90s, 1h; 0 = exactly on time) <input name="jitter" value="${v.jitter}" placeholder="server default"${inv('jitter')}>${err('jitter')}</label>
  <label>Alert when no backup succeeded for this many hours <input name="staleAfterHours" type="number" min="1" value="${v.staleAfterHours}" placeholder="36"${inv('staleAfterHours')}>${err('staleAfterHours')}</label>
  <h3>Retention</h3>
  <p class="muted small">borg prune runs after each successful scheduled backup with these rules. Empty fields are not used; with none at all, everything is kept.</p>
  <div class="actions">
    <label>Keep within <input name="keepWithin" value="${v.keepWithin}" placeholder="7d" size="6"${inv('keepWithin')}>${err('keepWithin')}</label>
    ${retentionFields.map(([f, label]) => html`<label>${label} <input name="${f}" type="number" min="1" value="${v[f]}" size="5"${inv(f)}>${err(f)}</label>`)}
  </div>
  <label>Extra prune times <textarea name="pruneCrons" rows="2" placeholder="0 12 * * 0"${inv('pruneCrons')}>${v.pruneCrons}</textarea>${err('pruneCrons')}</label>
  <h3>Repository checks</h3>
  <label>Check times (empty: no scheduled checks) <textarea name="checkCrons" rows="2" placeholder="30 4 * * 0"${inv('checkCrons')}>${v.checkCrons}</textarea>${err('checkCrons')}</label>
  <label><span><input type="checkbox" name="checkVerifyData" value="1"${v.checkVerifyData ? html` checked` : ''}> Scheduled checks verify data (<code>borg check --verify-data</code>: reads every chunk, slow)</span></label>
  ${o.isNew ? html`<label><span><input type="checkbox" name="paused" value="1"${v.paused ? html` checked` : ''}> Create it paused</span></label>` : ''}
  <button type="submit" class="primary">${o.isNew ? 'Add policy' : 'Save'}</button>
  ${timezoneList()}
</form>`;
}

let zones: string[] | undefined;

/** Suggestions for the time zone field (any IANA name the server knows is accepted). */
function timezoneList(): Html {
  zones ??= ['UTC', ...Intl.supportedValuesOf('timeZone').filter((z) => z !== 'UTC')];
  return html`<datalist id="timezones">${zones.map((z) => html`<option value="${z}"></option>`)}</datalist>`;
}

/** The names a policy form offers. */
export interface PolicyChoices {
  clients: string[];
  repositories: string[];
}

export function policiesListPage(p: Principal, filter: { client?: string; repository?: string }, policies: PolicyOverview[], temporalError: string | undefined | null): Html {
  const body = html`<h1>Policies</h1>
${hasRole(p.user.role, 'admin') ? html`<p><a class="button primary" href="/policies/new" id="add-policy">Add a policy</a></p>` : ''}
${filter.client || filter.repository ? html`<p class="muted">Only ${filter.client ? html`client <strong>${filter.client}</strong>` : ''} ${filter.repository ? html`repository <strong>${filter.repository}</strong>` : ''}. <a href="/policies">All policies</a></p>` : ''}
${temporalError ? html`<div class="card warn" role="status" id="temporal-error">Temporal did not answer, so next runs are not shown: ${temporalError}</div>` : ''}
${policies.length ? policyTable(policies) : html`<p class="muted">No policies yet. A policy backs a client up into a repository on a schedule, prunes by its retention rules and checks the repository.</p>`}`;
  return layout({ title: 'Policies', principal: p, active: 'policies', body });
}

export function newPolicyPage(p: Principal, ch: PolicyChoices, values: PolicyFormValues, problem?: FormProblem): Html {
  const body = html`<h1>Add a policy</h1>
${ch.clients.length && ch.repositories.length
? policyForm(p, { action: '/policies', isNew: true, values, problem, ...ch })
: html`<p class="muted">Add a <a href="/clients/new">client</a> and a <a href="/repositories">repository</a> first.</p>`}`;
  return layout({ title: 'Add a policy', principal: p, active: 'policies', body });
}

export function policyPage(p: Principal, d: PolicyDetails, ch: PolicyChoices | undefined, o: { done?: string; values?: PolicyFormValues; problem?: FormProblem }): Html {
  const body = html`<h1>Policy ${d.name} ${pausedBadge(d.paused)}</h1>
${doneNote(o.done)}
${policyDetails(p, d)}
${hooksSection(p, d.hooks, { action: `/policies/${seg(d.name)}/hooks`, owner: 'policy' })}
${ch ? html`<h2 id="edit">Edit</h2>${policyForm(p, { action: `/policies/${seg(d.name)}`, isNew: false, values: o.values ?? formValuesOf(d), problem: o.problem, ...ch })}` : ''}`;
  return layout({ title: `Policy ${d.name}`, principal: p, active: 'policies', body });
}
