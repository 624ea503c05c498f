// A repository's `borg check` results (repository page): when, ok or failed, with or without
// --verify-data, how long, what borg reported; and the "Check now" form for operators.
import { html } from 'hono/html';
import type { RepositoryCheck } from '../../db/schema.js';
import { hasRole, type Principal } from '../../services/auth.js';
import { duration, when } from './format.js';
import { csrfField, type Html } from './layout.js';
import { checkBadge } from './policies.js';

export function checksSection(p: Principal, repository: string, checks: RepositoryCheck[]): Html {
  return html`<h2 id="checks-heading">Checks</h2>
${hasRole(p.user.role, 'operator')
  ? html`<form method="post" action="/repositories/${encodeURIComponent(repository)}/check" class="inline-form" id="check-repository">${csrfField(p)}
  <label><input type="checkbox" name="verifyData" value="1"> verify data (reads every chunk; slow)</label>
  <button type="submit">Check now</button></form>`
  : ''}
${checks.length
  ? html`<table class="grid" id="checks"><thead><tr><th>Finished</th><th>Result</th><th>Verify data</th><th>Duration</th><th>Problems</th><th>Job</th></tr></thead>
<tbody>${checks.map(
      (k) => html`<tr class="${k.result === 'ok' ? '' : 'row-bad'}"><td>${when(k.finishedAt)}</td><td>${checkBadge(k.result)}</td><td>${k.verifyData ? 'yes' : 'no'}</td><td>${duration(k.durationMs / 1000)}</td>
<td>${k.errorCount
        ? html`<details><summary>${k.errorCount} problem(s)${k.exitCode !== null ? `, exit code ${k.exitCode}` : ''}</summary><div class="path">${k.errors.join('\n')}</div></details>`
        : k.result === 'ok' ? html`<span class="muted">none</span>` : html`exit code ${k.exitCode ?? '—'}`}</td>
<td>${k.jobId ? html`<a href="/jobs/${k.jobId}">${k.jobId.slice(0, 8)}</a>` : '—'}</td></tr>`,
    )}</tbody></table>`
  : html`<p class="muted">No checks recorded yet.</p>`}`;
}

/**
 * When the repository's last check failed: which repository, what borg said, and the repair path
 * an admin follows by hand (README "When the server is lost" → repair). BorgCube never runs
 * `borg check --repair` on its own: a repair can drop damaged archives, and only a person can
 * decide that a copy of the folder was taken first.
 */
export function damageNotice(repo: { name: string; path: string; storageHost: string }, checks: RepositoryCheck[]): Html | string {
  const last = checks[0];
  if (!last || last.result === 'ok') return '';
  const q = shellWord(repo.name);
  return html`<section class="card row-bad" id="repository-damaged">
<h2>Repository ${repo.name} is damaged</h2>
<p>The last check (${when(last.finishedAt)}${last.exitCode !== null ? `, borg exit code ${last.exitCode}` : ''}) reported ${last.errorCount} problem(s). borg said:</p>
<pre class="path">${last.errors.slice(0, 5).join('\n')}</pre>
<p>Backups into it may go on, but archives that use the damaged data cannot be restored in full. BorgCube does not repair it by itself. An admin, on the storage host ${repo.storageHost}:</p>
<ol>
<li>Takes a copy of the repository folder first (a repair can drop what it cannot fix): <code>cp -a ${repo.path} ${repo.path}.before-repair</code></li>
<li>Runs the repair (borg check --repair with the real key, as the storage account, while backups of this repository wait): <code>borgcube repo repair ${q} --confirm ${q}</code></li>
<li>Checks again (<em>Check now</em> below, with verify data); a passing check resolves the alert.</li>
</ol>
</section>`;
}

/** A word as a POSIX shell would read it back, for commands shown to copy. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9._-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Admins download the repository's recovery kit after typing their password again; others see nothing. */
export function recoveryKitForm(p: Principal, repository: string): Html | string {
  if (!hasRole(p.user.role, 'admin')) return '';
  return html`<h2 id="recovery-kit-heading">Recovery kit</h2>
<p class="muted">What plain borg needs to open this repository without BorgCube — its key, passphrase, path and borg version. Store it offline; it opens every backup in the repository. Each download is recorded in the audit log.</p>
<form method="post" action="/repositories/${encodeURIComponent(repository)}/recovery-kit" class="inline-form" id="recovery-kit">${csrfField(p)}
  <label>Your password <input type="password" name="password" required autocomplete="current-password"></label>
  <label>Format <select name="format"><option value="json">JSON file</option><option value="text">printable text</option></select></label>
  <button type="submit">Download recovery kit</button></form>`;
}
