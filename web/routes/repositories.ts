// Repositories: list, add (borg init on this storage host), show with archives — as recorded,
// or read live from the repository with the real key.
import { Hono, type Context } from 'hono';
import { html } from 'hono/html';
import { listArchives, listArchivesLive } from '../../services/archives.js';
import { confirmOwnPassword, hasRole } from '../../services/auth.js';
import { listRepositoryChecks } from '../../services/policies.js';
import { startCheck } from '../../services/policy-jobs.js';
import { addRepository, encryptionModes, getRepository, listRepositories } from '../../services/repositories.js';
import { buildRecoveryKit, recoveryKitText } from '../../services/recovery-kit.js';
import { listStorageHosts, STORAGE_HOST_SILENT_AFTER_S, type StorageHostView } from '../../services/storage-hosts.js';
import { actor } from '../api/body.js';
import { clientIp, principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { checksSection, damageNotice, recoveryKitForm } from '../views/checks.js';
import { bytes, ratio, when } from '../views/format.js';
import { csrfField, layout, select } from '../views/layout.js';
import { formFields } from './form.js';

export function repositoriesPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/', requireRole('viewer'), async (c) => {
    const p = principalOf(c);
    const [rows, hosts] = await Promise.all([listRepositories(s), listStorageHosts(s)]);
    const body = html`<h1>Repositories</h1>
${hasRole(p.user.role, 'admin')
  ? html`<form method="post" action="/repositories" class="card inline-form" id="add-repository">${csrfField(p)}
  <strong>New repository:</strong>
  <label>Name <input name="name" required placeholder="main"></label>
  <label>Path <input name="path" required placeholder="/srv/borg/main"></label>
  <label>Encryption ${select('encryption', encryptionModes, 'repokey')}</label>
  <button type="submit" class="primary">Create</button></form>`
  : ''}
${rows.length
  ? html`<table class="grid" id="repositories"><thead><tr><th>Name</th><th>Storage host</th><th>Path</th><th>Encryption</th><th>Archives</th><th>Original</th><th>Stored</th><th>Dedup ratio</th><th>Created</th></tr></thead>
<tbody>${rows.map((r) => {
      const st = r.stats;
      return html`<tr><td><a href="/repositories/${encodeURIComponent(r.name)}">${r.name}</a></td><td>${r.storageHost}</td><td class="path">${r.path}</td><td>${r.encryption}</td>
<td>${st?.archives ?? '—'}</td><td>${bytes(st?.originalSize)}</td><td>${bytes(st?.uniqueCompressedSize)}</td><td>${ratio(st && st.uniqueSize > 0 ? st.originalSize / st.uniqueSize : null)}</td><td>${when(r.createdAt)}</td></tr>`;
    })}</tbody></table>`
  : html`<p class="muted">No repositories yet.</p>`}${storageHostsSection(hosts)}`;
    return c.html(layout({ title: 'Repositories', principal: p, active: 'repositories', body }));
  });

  app.post('/', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const row = await addRepository(s, { name: f.name ?? '', path: f.path ?? '', encryption: (encryptionModes as readonly string[]).includes(f.encryption ?? '') ? (f.encryption as (typeof encryptionModes)[number]) : 'repokey' });
    return c.redirect(`/repositories/${encodeURIComponent(row.name)}`, 303);
  });

  // Reading the repository live runs borg with the real key under the repository's lease (backups
  // of that repository wait meanwhile): a POST with the CSRF token, never a GET that a link,
  // a prefetch or another site's <img> could trigger.
  const showPage = async (c: Context<WebEnv>, live: boolean) => {
    const p = principalOf(c);
    const repo = await getRepository(s, c.req.param('name') ?? '');
    const st = repo.stats;
    const checks = await listRepositoryChecks(s, repo.name);
    let archivesHtml;
    if (live) {
      const archives = await listArchivesLive(s, repo.name, { signal: c.req.raw.signal });
      archivesHtml = html`<p class="muted">Read from the repository just now with its key (${archives.length} archives). <a href="/repositories/${encodeURIComponent(repo.name)}">Show the recorded list</a></p>
<table class="grid" id="archives"><thead><tr><th>Archive</th><th>Started (client time)</th><th>Original</th><th>New data</th><th>Files</th><th>Id</th></tr></thead>
<tbody>${archives.map((a) => html`<tr><td class="path">${a.name}</td><td>${a.start}</td><td>${bytes(a.originalSize)}</td><td>${bytes(a.deduplicatedSize)}</td><td>${a.nfiles ?? '—'}</td><td><code class="small">${a.id.slice(0, 16)}</code>${a.known ? '' : html` <span class="badge state-stale">not recorded</span>`}</td></tr>`)}</tbody></table>`;
    } else {
      const archives = await listArchives(s, repo.name);
      archivesHtml = html`<p class="muted">As BorgCube recorded them.</p>
${hasRole(p.user.role, 'operator') ? html`<form method="post" action="/repositories/${encodeURIComponent(repo.name)}/live" class="inline-form" id="read-live">${csrfField(p)}<button type="submit">Read the repository now</button></form>` : ''}
${archives.length
  ? html`<table class="grid" id="archives"><thead><tr><th>Archive</th><th>Time (server)</th><th>Client</th><th>Original</th><th>Compressed</th><th>New data</th><th>Files</th><th>Job</th></tr></thead>
<tbody>${archives.map((a) => html`<tr><td class="path">${a.name}</td><td>${when(a.time)}</td><td>${a.clientName ?? '—'}</td><td>${bytes(a.originalSize)}</td><td>${bytes(a.compressedSize)}</td><td>${bytes(a.deduplicatedSize)}</td><td>${a.nfiles ?? '—'}</td><td>${a.jobId ? html`<a href="/jobs/${a.jobId}">${a.jobId.slice(0, 8)}</a>` : '—'}</td></tr>`)}</tbody></table>`
  : html`<p class="muted">No archives recorded yet.</p>`}`;
    }
    const body = html`<h1>Repository ${repo.name}</h1>
<dl class="facts">
  <dt>Storage host</dt><dd>${repo.storageHost}</dd><dt>Path</dt><dd class="path">${repo.path}</dd><dt>Encryption</dt><dd>${repo.encryption}</dd>
  <dt>Borg id</dt><dd><code class="small">${repo.borgId}</code></dd><dt>Created</dt><dd>${when(repo.createdAt)}</dd>
  <dt>Original size</dt><dd>${bytes(st?.originalSize)}</dd><dt>Deduplicated</dt><dd>${bytes(st?.uniqueSize)}</dd><dt>Stored</dt><dd>${bytes(st?.uniqueCompressedSize)}</dd>
  <dt>Dedup ratio</dt><dd>${ratio(st && st.uniqueSize > 0 ? st.originalSize / st.uniqueSize : null)}</dd><dt>Figures of</dt><dd>${st?.updatedAt ?? '—'}</dd>
</dl>${damageNotice(repo, checks)}
<h2>Archives</h2>
${archivesHtml}
${checksSection(p, repo.name, checks)}${recoveryKitForm(p, repo.name)}
<p><a href="/jobs?repository=${encodeURIComponent(repo.name)}">Jobs of this repository</a> · <a href="/policies?repository=${encodeURIComponent(repo.name)}">Policies of this repository</a></p>`;
    return c.html(layout({ title: `Repository ${repo.name}`, principal: p, active: 'repositories', body }));
  };
  app.get('/:name', requireRole('viewer'), (c) => showPage(c, false));
  app.post('/:name/live', requireRole('operator'), (c) => showPage(c, true));
  app.post('/:name/recovery-kit', requireRole('admin'), (c) => downloadRecoveryKit(deps, c));

  app.post('/:name/check', requireRole('operator'), async (c) => {
    const f = await formFields(c);
    const job = await startCheck(s, { repository: c.req.param('name'), verifyData: Boolean(f.verifyData), triggeredBy: actor(principalOf(c)) });
    return c.redirect(`/jobs/${job.id}`, 303);
  });
  return app;
}

/**
 * The recovery kit of one repository (services/recovery-kit.ts): admins only, after their
 * password again; never cached, and an audit event like every export.
 */
async function downloadRecoveryKit(deps: WebDeps, c: Context<WebEnv, '/:name/recovery-kit'>): Promise<Response> {
  const s = deps.services;
  const p = principalOf(c);
  const f = await formFields(c);
  const repo = await getRepository(s, c.req.param('name'));
  await confirmOwnPassword(s, deps.limiter, p, f.password ?? '', clientIp(c, s.config.web.trustedProxies));
  const kit = await buildRecoveryKit(s, { repository: repo.name, actor: { name: actor(p), userId: p.user.id } });
  const text = f.format === 'text';
  c.header('content-disposition', `attachment; filename="borgcube-recovery-kit-${repo.name}-${kit.createdAt.slice(0, 10)}.${text ? 'txt' : 'json'}"`);
  c.header('cache-control', 'no-store');
  c.header('content-type', text ? 'text/plain; charset=utf-8' : 'application/json');
  return c.body(text ? recoveryKitText(kit) : `${JSON.stringify(kit, null, 2)}\n`);
}

/** The storage hosts that registered, under the repositories they hold (`borgcube storage-host list`). */
function storageHostsSection(hosts: StorageHostView[]) {
  if (!hosts.length) return '';
  return html`<h2>Storage hosts</h2>
<p class="muted">Each runs the repository service, its storage worker and the sshd clients reach; one silent for more than ${STORAGE_HOST_SILENT_AFTER_S} s is down, and new jobs on it fail.</p>
<table class="grid" id="storage-hosts"><thead><tr><th>Name</th><th>Status</th><th>SSH (clients)</th><th>Repositories</th><th>Last seen</th></tr></thead>
<tbody>${hosts.map(
    (h) => html`<tr><td>${h.name}</td><td><span class="badge state-${h.status === 'up' ? 'succeeded' : 'failed'}">${h.status}</span></td><td>${h.sshHost}:${h.sshPort}</td><td>${h.repositories}</td><td>${h.lastSeenAt ? html`${when(h.lastSeenAt)} (${h.silentSeconds} s ago)` : 'never'}</td></tr>`,
  )}</tbody></table>`;
}
