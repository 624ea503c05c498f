// Forms that refuse input show why next to the fields and keep what the user typed. The service
// validates (zod) and may refuse for other reasons (Temporal rejects a cron, a name is taken);
// formProblem() turns such a refusal into messages by form field, and the views below render
// them. Errors that are not about the input go on to the app's error handler.
import { html } from 'hono/html';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import { ServiceError } from '../../services/errors.js';
import { statusOfKind } from '../errors.js';
import type { Html } from './layout.js';

export interface FormProblem {
  status: ContentfulStatusCode;
  /** One line for the top of the form. */
  message: string;
  /** Form field → what is wrong with it. */
  byField: Record<string, string[]>;
  /** Messages that belong to no field. */
  general: string[];
}

/** Where a zod issue goes: a form field, and a prefix for list entries ("line 2: …"). */
export type FieldOfPath = (path: readonly PropertyKey[]) => { field: string; prefix?: string } | undefined;
/** Which field a service's refusal is about, from its message (undefined: no particular field). */
export type FieldOfMessage = (err: ServiceError) => string | undefined;

const inputKinds = new Set(['invalid', 'conflict', 'not-found']);

/** The refusal as a FormProblem; anything that is not about the input is rethrown. */
export function formProblem(err: unknown, fieldOfPath: FieldOfPath, fieldOfMessage: FieldOfMessage = () => undefined): FormProblem {
  const p: FormProblem = { status: 400, message: '', byField: {}, general: [] };
  const add = (field: string | undefined, msg: string) => {
    if (field) (p.byField[field] ??= []).push(msg);
    else p.general.push(msg);
  };
  if (err instanceof z.ZodError) {
    for (const i of err.issues) {
      const where = fieldOfPath(i.path);
      add(where?.field, where ? `${where.prefix ?? ''}${i.message}` : `${i.path.map(String).join('.') || 'input'}: ${i.message}`);
    }
    p.message = err.issues.length === 1 ? 'One field needs correcting.' : `${err.issues.length} fields need correcting.`;
    return p;
  }
  if (err instanceof ServiceError && inputKinds.has(err.kind)) {
    p.status = statusOfKind[err.kind];
    p.message = err.message;
    add(fieldOfMessage(err), err.message);
    return p;
  }
  throw err;
}

/** The box at the top of a refused form: the summary and every message with its field's label. */
export function problemSummary(p: FormProblem | undefined, labels: Record<string, string>): Html | string {
  if (!p) return '';
  const items = [...Object.entries(p.byField).flatMap(([f, ms]) => ms.map((m) => ({ label: labels[f] ?? f, m }))), ...p.general.map((m) => ({ label: '', m }))];
  return html`<div class="card warn form-problem" role="alert">
<p class="error">${p.message}</p>
${items.length > 1 || (items.length === 1 && items[0]!.m !== p.message) ? html`<ul class="issues">${items.map((i) => html`<li>${i.label ? html`<strong>${i.label}</strong>: ` : ''}${i.m}</li>`)}</ul>` : ''}
</div>`;
}

/** The messages of one field, right below it. */
export function fieldError(p: FormProblem | undefined, field: string): Html | string {
  const ms = p?.byField[field];
  return ms?.length ? html`<span class="error small field-error" id="error-${field}">${ms.join('; ')}</span>` : '';
}

/** `aria-invalid` for a field with a problem. */
export function invalidAttr(p: FormProblem | undefined, field: string): Html | string {
  return p?.byField[field]?.length ? html` aria-invalid="true" aria-describedby="error-${field}"` : '';
}
