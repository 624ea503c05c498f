import type { Context } from 'hono';
import { invalid } from '../../services/errors.js';

/** The request's JSON body (validated by the caller's zod schema). */
export async function jsonBody(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/json')) throw invalid('send the body as JSON (Content-Type: application/json)');
  try {
    return (await c.req.json()) as unknown;
  } catch {
    throw invalid('the body is not valid JSON');
  }
}

/** How the principal shows up in jobs.triggeredBy. */
export function actor(p: { user: { username: string }; via: string }): string {
  return `${p.via === 'token' ? 'api' : 'web'}:${p.user.username}`;
}
