// The restore part of an archive page (issue 20 point 3): target client, target directory (a new
// directory by default, in place only when ticked), strip components, and the button. The paths
// are the tree's checkboxes (form `restore-paths`); none ticked means the whole archive. Operators
// and admins only; the route checks the role again and the service applies the dedup-scope rule.
import { html } from 'hono/html';
import { problemSummary, fieldError, invalidAttr, type FormProblem } from './form-problem.js';
import { select, type Html } from './layout.js';

/** What the restore form holds: as typed, so a refused form comes back as it was. */
export interface RestoreFormValues {
  client: string;
  target: string;
  inPlace: boolean;
  stripComponents: string;
  /** Ticked checkboxes as `path:<text>` / `pathB64:<base64>`, to tick them again. */
  picked: Set<string>;
}

export interface RestoreFormState {
  /** Every client a restore may go to. */
  clients: string[];
  values: RestoreFormValues;
  problem?: FormProblem;
}

export const emptyRestoreForm = (client: string | null): RestoreFormValues => ({ client: client ?? '', target: '', inPlace: false, stripComponents: '', picked: new Set() });

/** The key of a checkbox in RestoreFormValues.picked. */
export const pickKey = (name: 'path' | 'pathB64', value: string) => `${name}:${value}`;

const labels = { client: 'Target client', target: 'Target directory', inPlace: 'Restore in place', stripComponents: 'Strip components', paths: 'Picked paths' };

export function restoreFieldset(archiveId: string, s: RestoreFormState): Html {
  const v = s.values;
  const p = s.problem;
  return html`<fieldset class="card stacked" id="restore">
<legend>Restore onto a client</legend>
${problemSummary(p, labels)}${fieldError(p, 'paths')}
<p class="muted">Restores the entries ticked above (and what is below them), or the whole archive when none is ticked.</p>
<label>Target client ${select('client', s.clients, v.client, { id: 'restore-client', empty: s.clients.includes(v.client) ? undefined : '— choose —' })}</label>${fieldError(p, 'client')}
<label>Target directory <input type="text" name="target" id="restore-target" value="${v.target}" placeholder="/var/tmp/borgcube-restore-&lt;job id&gt;" maxlength="4096"${invalidAttr(p, 'target')}></label>${fieldError(p, 'target')}
<p class="muted small">Left empty, a new directory <code>/var/tmp/borgcube-restore-&lt;job id&gt;</code> on the target client; the archive's paths are recreated below it.</p>
<label><input type="checkbox" name="inPlace" value="1" id="restore-in-place"${v.inPlace ? html` checked` : ''}${invalidAttr(p, 'inPlace')}> Restore in place</label>${fieldError(p, 'inPlace')}
<p class="warn-note small" id="in-place-warning"><strong>In place overwrites</strong> the original paths on the target client with the archived versions (files changed since are lost). Leave the target directory empty then.</p>
<label>Strip components <input type="number" name="stripComponents" id="restore-strip" value="${v.stripComponents}" min="0" max="255" step="1" placeholder="0"${invalidAttr(p, 'stripComponents')}></label>${fieldError(p, 'stripComponents')}
<p class="actions"><button type="submit" id="start-restore" formmethod="post" formaction="/archives/${archiveId}/restore">Start restore</button></p>
</fieldset>`;
}
