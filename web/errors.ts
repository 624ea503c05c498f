// The one place that turns errors into HTTP (STYLE.md §10). Service errors carry their meaning;
// zod errors are bad input; anything else is a bug or an outage: logged with its stack, answered
// with a bare 500 that leaks nothing.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import type { Logger } from '../infra/logger.js';
import { ServiceError, type ServiceErrorKind } from '../services/errors.js';
import type { WebEnv } from './env.js';
import { errorPage } from './views/layout.js';

export const statusOfKind: Record<ServiceErrorKind, ContentfulStatusCode> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'rate-limited': 429,
  'too-large': 413,
  failed: 502,
  unavailable: 503,
};

export interface ErrorBody {
  error: { kind: string; message: string; issues?: Array<{ path: string; message: string }> };
}

/** JSON for /api/ and WebSocket paths and clients that ask for it; HTML pages for browsers. */
export function wantsJson(c: Context): boolean {
  const path = c.req.path;
  return path.startsWith('/api/') || path.startsWith('/ws/') || path === '/healthz' || (c.req.header('accept') ?? '').startsWith('application/json');
}

// node-postgres while PostgreSQL is down or restarting: the socket's errno, the pool's own
// messages, and the server's SQLSTATE classes 08 (connection exception) and 57P (shutdown,
// starting up). Drizzle wraps them (`cause`), hence the walk down the chain.
const downCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03']);
const downMessages = /Connection terminated|connection timeout|Client has encountered a connection error|the database system is (starting up|shutting down)/i;

/** True when `err` (or an error it wraps) says PostgreSQL cannot be reached right now. */
export function databaseDown(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (downCodes.has(code) || code.startsWith('08'))) return true;
    if (downMessages.test(e.message)) return true;
    if (e instanceof AggregateError && e.errors.some(databaseDown)) return true;
  }
  return false;
}

export function createErrorHandler(log: Logger) {
  return (err: Error, c: Context<WebEnv>): Response | Promise<Response> => {
    let status: ContentfulStatusCode;
    let body: ErrorBody;
    if (err instanceof ServiceError) {
      status = statusOfKind[err.kind];
      body = { error: { kind: err.kind, message: err.message } };
    } else if (err instanceof z.ZodError) {
      status = 400;
      const issues = err.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
      body = { error: { kind: 'invalid', message: issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '), issues } };
    } else if (err instanceof HTTPException) {
      status = err.status;
      body = { error: { kind: 'http', message: err.message || 'bad request' } };
    } else if (databaseDown(err)) {
      // An outage, not a bug: say what is down (503) rather than a bare 500, once per request.
      log.warn({ err: err.message, method: c.req.method, path: c.req.path }, 'request failed: the database is not reachable');
      status = 503;
      body = { error: { kind: 'unavailable', message: 'the database is not reachable; try again shortly' } };
    } else {
      log.error({ err, method: c.req.method, path: c.req.path }, 'request failed');
      status = 500;
      body = { error: { kind: 'internal', message: 'internal error; the server log has the details' } };
    }
    if (wantsJson(c)) return c.json(body, status);
    if (status === 401) {
      const next = c.req.method === 'GET' ? c.req.path : '/';
      return c.redirect(`/login?next=${encodeURIComponent(next)}`, 303);
    }
    return c.html(errorPage({ principal: c.get('principal'), status, message: body.error.message, issues: body.error.issues }), status);
  };
}
