// The clients pages: list, add, show with the last connection test, edit.
import { html } from 'hono/html';
import { hasRole, type Principal } from '../../services/auth.js';
import type { ClientTestResult, ClientView } from '../../services/clients.js';
import { dumpLines } from '../../services/dumps.js';
import type { JobView } from '../../services/jobs.js';
import { ago, when } from './format.js';
import { csrfField, layout, select, stateBadge, type Html } from './layout.js';

export function clientsListPage(p: Principal, rows: ClientView[]): Html {
  const body = html`<h1>Clients</h1>
${hasRole(p.user.role, 'admin') ? html`<p><a class="button primary" href="/clients/new" id="add-client">Add a client</a></p>` : ''}
${rows.length
? html`<table class="grid" id="clients"><thead><tr><th>Name</th><th>Host</th><th>SSH user</th><th>Paths</th><th>Borg</th><th>Last seen</th><th>Host key</th></tr></thead>
<tbody>${rows.map(
    (r) => html`<tr><td><a href="/clients/${encodeURIComponent(r.name)}">${r.name}</a></td><td>${r.host}:${r.port}</td><td>${r.sshUser}</td>
<td class="path">${r.paths.join(', ')}</td><td>${r.borgVersion ?? '—'}</td><td>${ago(r.lastSeenAt)}</td><td><code class="small">${r.hostKeyFingerprint ?? 'not pinned yet'}</code></td></tr>`,
  )}</tbody></table>`
: html`<p class="muted">No clients yet.</p>`}`;
  return layout({ title: 'Clients', principal: p, active: 'clients', body });
}

export function newClientPage(p: Principal): Html {
  return layout({ title: 'Add a client', principal: p, active: 'clients', body: html`<h1>Add a client</h1>${clientForm(p, undefined)}` });
}

export function clientPage(p: Principal, cl: ClientView, jobs: JobView[], repos: Array<{ name: string }>, test?: ClientTestResult): Html {
  const body = html`<h1>Client ${cl.name}</h1>
${test ? testResult(test) : ''}
<div class="actions">
${hasRole(p.user.role, 'operator') && repos.length
? html`<form method="post" action="/jobs" class="inline-form" id="start-backup">${csrfField(p)}<input type="hidden" name="client" value="${cl.name}">
<label>Back up into ${select('repository', repos.map((r) => r.name), undefined, { id: 'start-repository' })}</label> <button type="submit" class="primary">Start backup</button></form>`
: ''}
${hasRole(p.user.role, 'operator') ? html`<form method="post" action="/clients/${encodeURIComponent(cl.name)}/test" class="inline-form" id="test-client">${csrfField(p)}<button type="submit">Test connection</button></form>` : ''}
${hasRole(p.user.role, 'admin')
? html`<form method="post" action="/clients/${encodeURIComponent(cl.name)}/delete" class="inline-form" id="remove-client" data-confirm="Remove this client? Its archives stay in the repositories.">${csrfField(p)}<button type="submit" class="danger">Remove</button></form>`
: ''}
</div>
<dl class="facts">
<dt>Host</dt><dd>${cl.host}:${cl.port}</dd><dt>SSH user</dt><dd>${cl.sshUser}</dd>
<dt>Paths</dt><dd class="path">${cl.paths.join('\n')}</dd><dt>Excludes</dt><dd class="path">${cl.excludes.join('\n') || '—'}</dd>
<dt>Borg</dt><dd>${cl.borgPath} ${cl.borgVersion ? `(${cl.borgVersion})` : ''}</dd><dt>Dedup scope</dt><dd>${cl.dedupScope}</dd>
<dt>Database dumps</dt><dd class="path" id="client-dumps">${dumpLines(cl).join('\n') || '—'}</dd>
<dt>Host key</dt><dd><code>${cl.hostKeyFingerprint ?? 'not pinned yet (pinned at first contact)'}</code></dd>
<dt>Last seen</dt><dd>${when(cl.lastSeenAt)}</dd><dt>Added</dt><dd>${when(cl.createdAt)}</dd>
</dl>
<p><a href="/clients/${encodeURIComponent(cl.name)}/archives" id="client-archives">Archives of ${cl.name}</a> (browse, download)</p>
<h2>Recent jobs</h2>
${jobs.length
? html`<table class="grid"><thead><tr><th>Job</th><th>Repository</th><th>State</th><th>Created</th></tr></thead><tbody>${jobs.map(
    (j) => html`<tr><td><a href="/jobs/${j.id}">${j.id.slice(0, 8)}</a></td><td>${j.repositoryName ?? '—'}</td><td>${stateBadge(j.state)}</td><td>${when(j.createdAt)}</td></tr>`,
  )}</tbody></table><p><a href="/jobs?client=${encodeURIComponent(cl.name)}">All jobs of ${cl.name}</a></p>`
: html`<p class="muted">No jobs yet.</p>`}
${hasRole(p.user.role, 'admin') ? html`<h2>Edit</h2>${clientForm(p, cl)}` : ''}`;
  return layout({ title: `Client ${cl.name}`, principal: p, active: 'clients', body });
}

function testResult(t: ClientTestResult): Html {
  const ok = t.borgVersion && !t.missingPaths.length;
  return html`<div class="card ${ok ? 'ok' : 'warn'}" id="test-result" role="status">
<strong>Connection works.</strong> Host key <code>${t.hostKeyFingerprint}</code>${t.pinnedNow ? ' (pinned now)' : ''}.
${t.borgVersion ? html`borg ${t.borgVersion} at ${t.borgPath}.` : html`No borg at ${t.borgPath}: BorgCube deploys one at the first backup.`}
${t.missingPaths.length ? html`<br>Missing paths: <span class="path">${t.missingPaths.join(', ')}</span>` : ''}
</div>`;
}

function clientForm(p: Principal, cl: ClientView | undefined): Html {
  return html`<form method="post" action="${cl ? `/clients/${encodeURIComponent(cl.name)}` : '/clients'}" class="stacked" id="client-form">
  ${csrfField(p)}
  ${cl ? '' : html`<label>Name <input name="name" required placeholder="web-01"></label>`}
  <label>Host <input name="host" required value="${cl?.host ?? ''}" placeholder="web-01.example.org"></label>
  <label>SSH port <input name="port" type="number" min="1" max="65535" value="${cl?.port ?? 22}"></label>
  <label>SSH user <input name="user" value="${cl?.sshUser ?? 'root'}"></label>
  <label>Paths to back up, one per line <textarea name="paths" rows="4" required>${cl?.paths.join('\n') ?? ''}</textarea></label>
  <label>Exclude patterns, one per line <textarea name="excludes" rows="3">${cl?.excludes.join('\n') ?? ''}</textarea></label>
  <label>Borg on the client <input name="borgPath" value="${cl?.borgPath ?? 'borg'}"></label>
  <label>Deduplicate against ${select('dedupScope', [{ value: 'client', label: "the client's own archives" }, { value: 'repository', label: 'the whole repository' }], cl?.dedupScope ?? 'client')}</label>
  <button type="submit" class="primary">${cl ? 'Save' : 'Add client'}</button>
</form>`;
}
