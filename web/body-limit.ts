// Request body limits (hono's bodyLimit: Content-Length is checked before anything is read; a
// chunked body is counted as it streams and cut off at the limit). Whoever has not logged in can
// only send the login form; a logged-in user gets room for the largest form or JSON body the
// console takes, and the routes that carry lists of archive paths more. Too much → 413, through
// the app's one error handler.
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { tooLarge } from '../services/errors.js';
import type { WebEnv } from './env.js';

export const bodyLimits = {
  /** Before authentication: the login form (user name ≤ 200, password ≤ 1024, two tokens, `next`). */
  anonymous: 16 * 1024,
  /** Logged in: clients with 256 paths and 1024 excludes, policies, users, tokens. */
  authenticated: 1024 * 1024,
  /** Restores and downloads of picked paths: up to 1000 paths of up to 4096 bytes, form-encoded. */
  archivePaths: 16 * 1024 * 1024,
};

/** Routes whose bodies list archive paths (restores and downloads of picked entries). */
const archivePathRoutes = /^(\/archives\/[^/]+\/(restore|download)|\/api\/v1\/restores)\/?$/;

const kib = (n: number) => (n >= 1024 * 1024 ? `${n / (1024 * 1024)} MiB` : `${n / 1024} KiB`);

function limit(maxSize: number, who: string): MiddlewareHandler<WebEnv> {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge(`the request body is larger than ${kib(maxSize)}, the most this server accepts ${who}`);
    },
  });
}

/** Chooses the limit by who is asking (after authentication) and where. */
export function requestBodyLimit(): MiddlewareHandler<WebEnv> {
  const anonymous = limit(bodyLimits.anonymous, 'before you log in');
  const authenticated = limit(bodyLimits.authenticated, 'here');
  const archivePaths = limit(bodyLimits.archivePaths, 'for a list of archive paths');
  return (c, next) => {
    if (!c.get('principal')) return anonymous(c, next);
    return (archivePathRoutes.test(c.req.path) ? archivePaths : authenticated)(c, next);
  };
}
