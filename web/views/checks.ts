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
