// Reading HTML forms: every field as a string (files are refused), lists one per line.
import type { Context } from 'hono';
import { invalid } from '../../services/errors.js';

export async function formFields(c: Context): Promise<Record<string, string>> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded') && !type.startsWith('multipart/form-data')) throw invalid('send the form as application/x-www-form-urlencoded');
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    if (typeof v !== 'string') throw invalid(`${k}: files are not accepted here`);
    out[k] = v;
  }
  return out;
}

/** A textarea with one entry per line: trimmed, blank lines dropped. */
export function lines(v: string | undefined): string[] {
  return (v ?? '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Only local paths may be redirect targets after a login (no `//host`, no `\`). */
export function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])[^\s\\]*$/.test(next) ? next : '/';
}
