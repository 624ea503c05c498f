// The clients pages: list, add, show with the last connection test, edit.
import { html } from 'hono/html';
import { hasRole, type Principal } from '../../services/auth.js';
import { supportedClientBorg } from '../../services/client-borg.js';
import type { z } from 'zod';
import type { ClientPage, ClientTestResult, ClientView, listClientsInput } from '../../services/clients.js';
import { dumpLines } from '../../services/dumps.js';
import type { JobView } from '../../services/jobs.js';
import { ago, when } from './format.js';
import { hooksSection } from './hooks.js';
import { csrfField, layout, select, stateBadge, type Html } from './layout.js';

/** clients.borg_deploy in words (services/client-borg.ts decideClientBorg). */
const borgDeployLabels: Record<ClientView['borgDeploy'], string> = {
  'if-missing': 'only where the client has no borg',
  'if-unsupported': 'also instead of a borg other than 1.2.x / 1.4.x',
  always: 'always, whatever the client has',
  never: 'never: jobs fail without a borg 1.2.x / 1.4.x',
};

/** Clients per page of the console's list. */
export const CLIENT_PAGE_ROWS = 100;

export function clientsListPage(p: Principal, q: z.output<typeof listClientsInput>, page: ClientPage): Html {
  const rows = page.clients;
  const params = (cursor: string | null) => new URLSearchParams(Object.entries({ search: q.search, limit: q.limit === CLIENT_PAGE_ROWS ? undefined : String(q.limit), cursor: cursor ?? undefined }).filter((e): e is [string, string] => Boolean(e[1]))).toString();
  const body = html`<h1>Clients</h1>
${hasRole(p.user.role, 'admin') ? html`<p><a class="button primary" href="/clients/new" id="add-client">Add a client</a></p>` : ''}
<form method="get" action="/clients" class="filters" id="client-search">
<label>Name contains <input type="search" name="search" value="${q.search ?? ''}" placeholder="web-" autocomplete="off"></label>
<button type="submit">Search</button>${q.search ? html` <a href="/clients">all clients</a>` : ''}
</form>
<p class="muted small" id="clients-count">${page.total} ${q.search ? html`clients whose name contains “${q.search}”` : 'clients'}${page.total > rows.length ? html`; ${rows.length} on this page, by name${q.cursor ? html` after ${q.cursor}` : ''}` : ''}.</p>
${rows.length
? html`<table class="grid" id="clients"><thead><tr><th>Name</th><th>Host</th><th>SSH user</th><th>Paths</th><th>Borg</th><th>Last seen</th><th>Host key</th></tr></thead>
<tbody>${rows.map(
    (r) => html`<tr><td><a href="/clients/${encodeURIComponent(r.name)}">${r.name}</a></td><td>${r.host}:${r.port}</td><td>${r.sshUser}</td>
<td class="path">${r.paths.join(', ')}</td><td>${r.borgVersion ?? '—'}</td><td>${ago(r.lastSeenAt)}</td><td><code class="small">${r.hostKeyFingerprint ?? 'not pinned yet'}</code></td></tr>`,
  )}</tbody></table>`
: html`<p class="muted">${q.search ? 'No client matches.' : 'No clients yet.'}</p>`}
<nav class="pager">${q.cursor ? html`<a href="/clients?${params(null)}">First page</a>` : ''} ${page.nextCursor ? html`<a rel="next" id="next-page" href="/clients?${params(page.nextCursor)}">Next clients →</a>` : ''}</nav>`;
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
<dt>Borg</dt><dd id="client-borg">${cl.borgPath}: ${cl.borgVersion ? html`borg ${cl.borgVersion}, found ${when(cl.lastSeenAt)}` : html`<span class="muted">no version found yet (test the connection)</span>`}</dd>
<dt>Borg deploy</dt><dd id="client-borg-deploy">${cl.borgDeploy} <span class="muted">(${borgDeployLabels[cl.borgDeploy]})</span></dd><dt>Dedup scope</dt><dd>${cl.dedupScope}</dd>
<dt>Database dumps</dt><dd class="path" id="client-dumps">${dumpLines(cl).join('\n') || '—'}</dd>
<dt>Host key</dt><dd><code>${cl.hostKeyFingerprint ?? 'not pinned yet (pinned at first contact)'}</code></dd>
<dt>Last seen</dt><dd>${when(cl.lastSeenAt)}</dd><dt>Added</dt><dd>${when(cl.createdAt)}</dd>
</dl>
${hooksSection(p, cl.hooks, { action: `/clients/${encodeURIComponent(cl.name)}/hooks`, owner: 'client' })}
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
  const ok = t.borgVersion && supportedClientBorg(t.borgVersion) && !t.missingPaths.length;
  return html`<div class="card ${ok ? 'ok' : 'warn'}" id="test-result" role="status">
<strong>Connection works.</strong> Host key <code>${t.hostKeyFingerprint}</code>${t.pinnedNow ? ' (pinned now)' : ''}.
${t.borgVersion ? html`borg ${t.borgVersion} at ${t.borgPath}.` : html`No borg at ${t.borgPath}.`} <span id="test-borg-plan">Borg deploy ${t.borgDeploy}: ${t.borgPlan}.</span>
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
  <label>Use the server's borg ${select('borgDeploy', Object.entries(borgDeployLabels).map(([value, label]) => ({ value, label })), cl?.borgDeploy ?? 'if-missing')}</label>
  <label>Deduplicate against ${select('dedupScope', [{ value: 'client', label: "the client's own archives" }, { value: 'repository', label: 'the whole repository' }], cl?.dedupScope ?? 'client')}</label>
  <button type="submit" class="primary">${cl ? 'Save' : 'Add client'}</button>
</form>`;
}
