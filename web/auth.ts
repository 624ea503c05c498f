// Authentication, CSRF and role middleware. Who is asking: an API token (`Authorization:
// Bearer`, for scripts) or the session cookie (browsers). Every state-changing request made with
// the cookie must echo the session's CSRF token (form field `_csrf` or header `X-CSRF-Token`);
// bearer tokens are exempt because browsers never attach them on their own.
import { isIP } from 'node:net';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { authenticateApiToken, authenticateSession, hasRole, sameSecret, type Principal } from '../services/auth.js';
import type { ServiceDeps } from '../services/deps.js';
import { forbidden, unauthorized } from '../services/errors.js';
import type { Role } from '../services/users.js';
import type { WebEnv } from './env.js';

export const sessionCookie = 'borgcube_session';
/** Double-submit cookie of the login form (there is no session yet to hold a CSRF token). */
export const loginCsrfCookie = 'borgcube_login_csrf';

const unsafeMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Secure cookies when the request came over https or the console's public URL is https. */
export function isHttps(c: Context, publicUrl: string): boolean {
  return publicUrl.startsWith('https:') || new URL(c.req.url).protocol === 'https:';
}

export function setSessionCookie(c: Context, token: string, expiresAt: Date, publicUrl: string): void {
  setCookie(c, sessionCookie, token, { httpOnly: true, sameSite: 'Lax', secure: isHttps(c, publicUrl), path: '/', expires: expiresAt });
}

export function clearSessionCookie(c: Context, publicUrl: string): void {
  deleteCookie(c, sessionCookie, { path: '/', secure: isHttps(c, publicUrl), httpOnly: true, sameSite: 'Lax' });
}

/**
 * The client's address: the socket's peer, unless that peer is one of the configured reverse
 * proxies — then the nearest address in X-Forwarded-For that is not a trusted proxy itself.
 * Headers from anyone else are ignored (anyone can send them).
 */
export function clientIp(c: Context<WebEnv>, trustedProxies: readonly string[]): string {
  const peer = socketPeer(c);
  return peer ? clientAddress(peer, c.req.header('x-forwarded-for'), trustedProxies) : 'unknown';
}

/** The socket's peer address (absent under app.request() in tests). */
const socketPeer = (c: Context<WebEnv>) => (c.env as WebEnv['Bindings'] | undefined)?.incoming?.socket.remoteAddress;

/** Whether `address` is one of the configured proxies (IPv4-mapped IPv6 addresses included). */
const isTrustedProxy = (address: string, trustedProxies: readonly string[]) => trustedProxies.includes(unmapped(address));

/** clientIp's rule, for a peer address and its X-Forwarded-For header. */
export function clientAddress(peer: string, forwardedFor: string | undefined, trustedProxies: readonly string[]): string {
  const trusted = (a: string) => isTrustedProxy(a, trustedProxies);
  if (!trusted(peer) || !forwardedFor) return peer;
  // Each proxy appends the address it got the request from: read from the right, skipping our own.
  const hops = forwardedFor.split(',').map((h) => h.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (isIP(hop) === 0) return peer; // garbage: believe nothing further left
    if (!trusted(hop)) return hop;
  }
  return peer;
}

/**
 * Whether a request came through a proxy that is not a configured one: it carries forwarding
 * headers, so its socket address (often 127.0.0.1) says nothing about who sent it.
 */
export function viaUnknownProxy(c: Context<WebEnv>, trustedProxies: readonly string[]): boolean {
  const peer = socketPeer(c);
  if (peer && isTrustedProxy(peer, trustedProxies)) return false;
  return ['x-forwarded-for', 'forwarded', 'x-real-ip'].some((h) => c.req.header(h) !== undefined);
}

const unmapped = (a: string) => (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a);

/** Finds the principal, if any; never refuses by itself. */
export function authenticate(deps: Pick<ServiceDeps, 'db' | 'config'>): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    let principal: Principal | undefined;
    const authz = c.req.header('authorization');
    if (authz) {
      const m = /^Bearer\s+(\S+)$/i.exec(authz);
      principal = m ? await authenticateApiToken(deps, m[1]!) : undefined;
    } else {
      const token = getCookie(c, sessionCookie);
      if (token) {
        principal = await authenticateSession(deps, token);
        if (!principal) clearSessionCookie(c, deps.config.web.publicUrl);
      }
    }
    c.set('principal', principal);
    await next();
  };
}

/**
 * State-changing requests made with the session cookie must carry the session's CSRF token. The
 * form body is parsed here and cached by Hono, so handlers can read it again.
 */
export function csrfProtection(): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const p = c.get('principal');
    if (unsafeMethods.has(c.req.method) && p?.via === 'session') {
      let sent = c.req.header('x-csrf-token');
      if (!sent) {
        const type = c.req.header('content-type') ?? '';
        if (type.startsWith('application/x-www-form-urlencoded') || type.startsWith('multipart/form-data')) {
          const field = (await c.req.parseBody())._csrf;
          sent = typeof field === 'string' ? field : undefined;
        }
      }
      if (!sent || !sameSecret(sent, p.session!.csrfToken)) throw forbidden('the CSRF token is missing or wrong; reload the page and try again');
    }
    await next();
  };
}

/** The request's principal; 401 (pages: a redirect to the login) when there is none. */
export function principalOf(c: Context<WebEnv>): Principal {
  const p = c.get('principal');
  if (!p) throw unauthorized('log in first (session cookie or API token)');
  return p;
}

/** Refuses requests without a principal having at least `role`. */
export function requireRole(role: Role): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const p = principalOf(c);
    if (!hasRole(p.user.role, role)) throw forbidden(`this needs the ${role} role; you are ${p.user.role}`);
    await next();
  };
}

/**
 * WebSockets are not covered by SameSite in every browser: a session-authenticated upgrade must
 * come from a page of this console (Origin = the request's own origin or the public URL's).
 */
export function sameOriginUpgrade(publicUrl: string): MiddlewareHandler<WebEnv> {
  return async (c, next) => {
    const p = c.get('principal');
    const origin = c.req.header('origin');
    if (p?.via === 'session' && origin) {
      const host = c.req.header('host');
      const allowed = new Set([new URL(publicUrl).origin, ...(host ? [`http://${host}`, `https://${host}`] : [])]);
      if (!allowed.has(origin)) throw forbidden('cross-origin WebSocket refused');
    }
    await next();
  };
}
