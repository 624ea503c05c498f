// The hooks section of the client and policy pages: what runs on the client around a backup,
// shown as text (hono's html escapes every interpolation), and for admins a form to replace it.
import { html } from 'hono/html';
import type { Hook, HookSet } from '../../db/schema.js';
import { hasRole, type Principal } from '../../services/auth.js';
import { hookPhases, hooksToLines, hookTimeoutOf, type HookPhase } from '../../services/hooks.js';
import { csrfField, type Html } from './layout.js';

const phaseLabel: Record<HookPhase, string> = { before: 'Before the backup', onFailure: 'After a failed backup', after: 'After every backup' };

/** One timeout shown for a phase's field: the hooks' own if they agree. */
function phaseTimeout(hooks: Hook[] | undefined): string {
  const t = new Set((hooks ?? []).map(hookTimeoutOf));
  return t.size === 1 ? `${[...t][0]}s` : '';
}

export function hooksSection(p: Principal, hooks: HookSet, o: { action: string; owner: 'client' | 'policy' }): Html {
  const rows = hookPhases.flatMap((ph) => (hooks[ph] ?? []).map((h) => ({ ph, h })));
  // A command with a newline (set through the CLI or the API) would not survive a one-per-line textarea.
  // So would hooks of one phase with different timeouts (the form has one timeout per phase).
  const multiLine = rows.some((r) => r.h.command.includes('\n')) || hookPhases.some((ph) => (hooks[ph]?.length ?? 0) > 1 && !phaseTimeout(hooks[ph]));
  return html`<h2 id="hooks">Hooks</h2>
<p class="muted">Shell commands run on the client as the SSH user, each with a timeout after which its process group is killed.${o.owner === 'policy' ? " They run in addition to the client's: before — after the client's; after — before the client's." : ''} A failing before hook fails the backup before anything is pushed; after hooks always run, also after a failure or a cancel.</p>
${rows.length
? html`<table class="grid" id="hooks-table"><thead><tr><th>When</th><th>Timeout</th><th>Command</th></tr></thead><tbody>${rows.map(
    (r) => html`<tr><td>${phaseLabel[r.ph]}</td><td>${hookTimeoutOf(r.h)} s</td><td><pre class="path">${r.h.command}</pre></td></tr>`,
  )}</tbody></table>`
: html`<p class="muted" id="no-hooks">No hooks.</p>`}
${!hasRole(p.user.role, 'admin')
? ''
: multiLine
? html`<p class="muted">A command spans several lines, or hooks of one phase have different timeouts: change these hooks with <code>borgcube ${o.owner} hooks</code> or the API.</p>`
: html`<form method="post" action="${o.action}" class="stacked" id="hooks-form">
  ${csrfField(p)}
  ${hookPhases.map(
    (ph) => html`<label>${phaseLabel[ph]}, one command per line <textarea name="${ph}" rows="2">${hooksToLines(hooks[ph])}</textarea></label>
  <label>Timeout of each (90s, 10m, 1h; empty: 10m) <input name="${ph}Timeout" value="${phaseTimeout(hooks[ph])}"></label>`,
  )}
  <button type="submit">Save hooks</button>
</form>`}`;
}
