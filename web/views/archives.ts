// Archive pages: a client's archives, and an archive's tree (breadcrumbs, entries with metadata,
// download links, a form of picked paths). Names come from clients: they go through
// displayPath() and `html` escaping, never into markup; links carry them URL-encoded.
import { html } from 'hono/html';
import { hasRole, type Principal } from '../../services/auth.js';
import { displayPath, modeString, type CatalogItem, type DirectoryPage } from '../../services/archive-browse.js';
import type { ArchiveDetail } from '../../services/archives.js';
import { bytes, when } from './format.js';
import { csrfField, layout, type Html } from './layout.js';
import { pickKey, restoreFieldset, type RestoreFormState } from './restore-form.js';

const isUtf8 = (b: Buffer) => Buffer.from(b.toString('utf8'), 'utf8').equals(b);

/** The query naming a path: readable text when it is UTF-8, base64 otherwise. */
export function pathQuery(p: Buffer): string {
  if (!p.length) return '';
  return isUtf8(p) ? `path=${encodeURIComponent(p.toString('utf8'))}` : `pathB64=${encodeURIComponent(p.toString('base64'))}`;
}

const archiveUrl = (a: ArchiveDetail, q = '') => `/archives/${a.id}${q ? `?${q}` : ''}`;
const downloadUrl = (a: ArchiveDetail, p: Buffer, gzip: boolean) => `/api/v1/archives/${a.id}/download?${[pathQuery(p), gzip ? 'gzip=1' : ''].filter(Boolean).join('&')}`;

export function clientArchivesPage(p: Principal, client: string, rows: ArchiveDetail[]): Html {
  const body = html`<h1>Archives of ${client}</h1>
<p><a href="/clients/${encodeURIComponent(client)}">Client ${client}</a></p>
${rows.length
? html`<table class="grid" id="archives"><thead><tr><th>Archive</th><th>Time</th><th>Original</th><th>Deduplicated</th><th>Files</th><th>Repository</th><th>Policy</th><th>Job</th></tr></thead>
<tbody>${rows.map(
    (a) => html`<tr><td><a href="${archiveUrl(a)}">${a.name}</a></td><td>${when(a.time)}</td><td>${bytes(a.originalSize)}</td><td>${bytes(a.deduplicatedSize)}</td><td>${a.nfiles ?? '—'}</td>
<td>${a.repositoryName}</td><td>${a.policyName ?? '—'}</td><td>${a.jobId ? html`<a href="/jobs/${a.jobId}">${a.jobId.slice(0, 8)}</a>` : '—'}</td></tr>`,
  )}</tbody></table>`
: html`<p class="muted">No archives yet.</p>`}`;
  return layout({ title: `Archives of ${client}`, principal: p, active: 'clients', body });
}

function breadcrumbs(a: ArchiveDetail, path: Buffer): Html {
  const parts: Array<{ label: string; path: Buffer }> = [];
  for (let i = path.indexOf(0x2f); ; i = path.indexOf(0x2f, i + 1)) {
    const upto = i < 0 ? path : path.subarray(0, i);
    if (upto.length) parts.push({ label: displayPath(upto.subarray(upto.lastIndexOf(0x2f) + 1)), path: upto });
    if (i < 0) break;
  }
  return html`<nav class="breadcrumbs" id="breadcrumbs"><a href="${archiveUrl(a)}">${a.name}</a>${parts.map((c) => html` / <a href="${archiveUrl(a, pathQuery(c.path))}">${c.label}</a>`)}</nav>`;
}

function entryRow(a: ArchiveDetail, e: CatalogItem, canDownload: boolean, picked: ReadonlySet<string>): Html {
  const name = displayPath(e.name);
  const field = isUtf8(e.path) ? 'path' : 'pathB64';
  const value = field === 'path' ? e.path.toString('utf8') : e.path.toString('base64');
  const pick = html`<input type="checkbox" form="restore-paths" name="${field}" value="${value}" aria-label="pick ${name}"${picked.has(pickKey(field, value)) ? html` checked` : ''}>`;
  const link = e.type === 'symlink' && e.target ? html` <span class="muted">→ ${displayPath(e.target)}</span>` : e.type === 'hardlink' && e.target ? html` <span class="muted">(hard link to ${displayPath(e.target)})</span>` : '';
  const label = e.type === 'dir' ? html`<a href="${archiveUrl(a, pathQuery(e.path))}" class="dir">${name}/</a>` : html`<span>${name}</span>`;
  const owner = e.implicit ? '—' : `${e.user ? displayPath(e.user) : e.uid}:${e.group ? displayPath(e.group) : e.gid}`;
  const dl = canDownload && (e.type === 'dir' || e.type === 'file' || e.type === 'hardlink') ? html`<a href="${downloadUrl(a, e.path, false)}" download>tar</a> · <a href="${downloadUrl(a, e.path, true)}" download>tar.gz</a>` : '';
  return html`<tr data-type="${e.type}"><td>${pick}</td><td class="path">${label}${link}</td><td><code>${modeString(e.type, e.mode)}</code></td><td>${owner}</td>
<td>${e.type === 'dir' ? '' : bytes(e.size)}</td><td>${e.implicit ? '—' : when(new Date(Number(e.mtime / 1_000_000n)))}</td><td>${dl}</td></tr>`;
}

export interface ArchivePageData {
  archive: ArchiveDetail;
  page?: DirectoryPage;
  search?: { pattern: string; entries: CatalogItem[]; truncated: boolean };
  limit: number;
  /** The restore form (operators and admins): choices, what was typed, why it was refused. */
  restore?: RestoreFormState;
}

/** The page's own query (directory, offset or search), so a refused form re-renders this page. */
export function pageView(d: Pick<ArchivePageData, 'page' | 'search'>): string {
  if (d.search) return `find=${encodeURIComponent(d.search.pattern)}`;
  const q = d.page ? pathQuery(d.page.path) : '';
  return [q, d.page?.offset ? `offset=${d.page.offset}` : ''].filter(Boolean).join('&');
}

export function archivePage(p: Principal, d: ArchivePageData): Html {
  const a = d.archive;
  const canDownload = hasRole(p.user.role, 'operator');
  const path = d.page?.path ?? Buffer.alloc(0);
  const entries = d.search?.entries ?? d.page?.entries ?? [];
  const page = d.page;
  const more = page && page.total > page.offset + page.entries.length;
  const picked = d.restore?.values.picked ?? new Set<string>();
  const body = html`<h1>Archive ${a.name}</h1>
<dl class="facts">
<dt>Client</dt><dd>${a.clientName ? html`<a href="/clients/${encodeURIComponent(a.clientName)}/archives">${a.clientName}</a>` : '—'}</dd>
<dt>Repository</dt><dd>${a.repositoryName}</dd><dt>Time</dt><dd>${when(a.time)}</dd>
<dt>Original size</dt><dd>${bytes(a.originalSize)}</dd><dt>Deduplicated</dt><dd>${bytes(a.deduplicatedSize)}</dd><dt>Files</dt><dd>${a.nfiles ?? '—'}</dd>
<dt>Policy</dt><dd>${a.policyName ?? '—'}</dd><dt>Job</dt><dd>${a.jobId ? html`<a href="/jobs/${a.jobId}">${a.jobId}</a>` : '—'}</dd>
</dl>
<form method="get" action="${archiveUrl(a)}" class="inline-form" id="archive-search"><label>Search <input type="search" name="find" value="${d.search?.pattern ?? ''}" placeholder="*.conf, **/logs/*, or text" maxlength="1024"></label> <button type="submit">Find</button></form>
${d.search
? html`<h2>Matches for <code>${d.search.pattern}</code></h2>${d.search.truncated ? html`<p class="muted">Only the first ${entries.length} matches are shown; narrow the pattern.</p>` : ''}<p><a href="${archiveUrl(a)}">Back to the tree</a></p>`
: breadcrumbs(a, path)}
<form method="post" action="/archives/${a.id}/download" id="restore-paths">${canDownload ? html`${csrfField(p)}<input type="hidden" name="view" value="${pageView(d)}">` : ''}
${entries.length
? html`<table class="grid" id="archive-tree"><thead><tr><th></th><th>Name</th><th>Mode</th><th>Owner</th><th>Size</th><th>Modified</th><th>Download</th></tr></thead>
<tbody>${entries.map((e) => entryRow(a, d.search ? { ...e, name: e.path } : e, canDownload, picked))}</tbody></table>`
: html`<p class="muted">${d.search ? 'No matches.' : 'This directory is empty.'}</p>`}
${canDownload && entries.length ? html`<p class="actions"><button type="submit" name="gzip" value="0" id="download-picked">Download picked (tar)</button> <button type="submit" name="gzip" value="1" id="download-picked-gz">Download picked (tar.gz)</button></p>` : ''}
${canDownload && d.restore ? restoreFieldset(a.id, d.restore) : ''}
</form>
${page && (page.offset > 0 || more)
? html`<p class="pager">${page.offset > 0 ? html`<a href="${archiveUrl(a, [pathQuery(path), `offset=${Math.max(0, page.offset - d.limit)}`].filter(Boolean).join('&'))}" rel="prev">Previous</a>` : ''}
<span class="muted">entries ${page.offset + 1}–${page.offset + page.entries.length} of ${page.total}</span>
${more ? html`<a href="${archiveUrl(a, [pathQuery(path), `offset=${page.offset + page.entries.length}`].filter(Boolean).join('&'))}" rel="next">Next</a>` : ''}</p>`
: ''}`;
  return layout({ title: `Archive ${a.name}`, principal: p, active: 'clients', body });
}
