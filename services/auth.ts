// Console authentication: password logins with rate limiting, cookie sessions stored in
// PostgreSQL (only the SHA-256 of the cookie value), API tokens for scripts, role checks.
// The web app's middleware calls these; the CLI runs as root on the server and needs none of it.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import * as authQ from '../db/queries/auth.js';
import * as usersQ from '../db/queries/users.js';
import type { UserRow } from '../db/queries/users.js';
import { hashPassword, verifyPassword } from '../infra/passwords.js';
import type { ServiceDeps } from './deps.js';
import { forbidden, invalid, notFound, rateLimited, unauthorized } from './errors.js';
import { passwordSchema, type Role } from './users.js';

/** A session ends after this long without a request (sliding)… */
export const sessionIdleMs = 12 * 3600_000;
/** …and at the latest this long after the login, however active. */
export const sessionMaxMs = 7 * 24 * 3600_000;
/** lastSeenAt/expiresAt are written at most this often per session, not on every request. */
const touchEveryMs = 60_000;

const roleRank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** True when `role` may do what `needed` may. */
export function hasRole(role: Role, needed: Role): boolean {
  return roleRank[role] >= roleRank[needed];
}

export function requireRoleOf(principal: Principal, needed: Role): void {
  if (!hasRole(principal.user.role, needed)) throw forbidden(`this needs the ${needed} role; you are ${principal.user.role}`);
}

/** Who makes a request, and how they proved it. */
export interface Principal {
  user: UserRow;
  via: 'session' | 'token';
  /** Set for cookie sessions: the CSRF token forms and fetches must echo. */
  session?: { idHash: string; csrfToken: string; expiresAt: Date };
  tokenId?: string;
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Constant-time string comparison for secrets of possibly different lengths. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

// ---------------------------------------------------------------------------------------------
// Login rate limiting

/**
 * Counts login attempts per IP and per user name; refuses both once either reaches the limit.
 * An attempt is counted before its password is checked (scrypt takes ~0.1 s): counting only
 * after a failure let every request already in flight through — 12 parallel wrong passwords
 * all got checked against a limit of 5.
 */
export interface LoginLimiter {
  /** Counts an attempt: 0 when it may go ahead, else the seconds until the caller may try again. */
  attempt(ip: string, username: string): Promise<number>;
  /** The attempt was right: it no longer counts against the IP, and its user's count restarts. */
  succeeded(ip: string, username: string): Promise<void>;
}

/**
 * Check and count in one step (a script runs atomically in Redis): KEYS ip and user counters,
 * ARGV their limits and the window. A refused attempt does not count, so hammering a blocked
 * user name does not also use up the budget of everyone behind the same address.
 * Returns {1, 0} when the attempt may go ahead, {0, seconds to wait} when not.
 */
const attemptScript = `
local n1 = tonumber(redis.call('GET', KEYS[1]) or '0')
local n2 = tonumber(redis.call('GET', KEYS[2]) or '0')
if n1 >= tonumber(ARGV[1]) or n2 >= tonumber(ARGV[2]) then
  local wait = 0
  if n1 >= tonumber(ARGV[1]) then wait = math.max(wait, redis.call('TTL', KEYS[1])) end
  if n2 >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('TTL', KEYS[2])) end
  return {0, wait}
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return {1, 0}
`;

/**
 * Fixed-window counters in Redis, shared by every web process. Defaults: 5 attempts per user
 * name and 20 per IP address in 15 minutes (an office behind one address must not be locked out
 * by one person's typos); right passwords give their attempt back. The user name key is hashed:
 * names typed by strangers never become Redis keys verbatim.
 */
export function createRedisLoginLimiter(redis: Redis, opts: { maxFailures?: number; maxFailuresPerIp?: number; windowSeconds?: number; prefix?: string } = {}): LoginLimiter {
  const maxUser = opts.maxFailures ?? 5;
  const maxIp = opts.maxFailuresPerIp ?? maxUser * 4;
  const window = opts.windowSeconds ?? 900;
  const prefix = opts.prefix ?? 'borgcube:login-failures';
  const ipKey = (ip: string) => `${prefix}:ip:${ip}`;
  const userKey = (username: string) => `${prefix}:user:${sha256(username.toLowerCase())}`;
  return {
    async attempt(ip, username) {
      const r = (await redis.eval(attemptScript, 2, ipKey(ip), userKey(username), maxIp, maxUser, window)) as [number, number];
      return r[0] ? 0 : Math.max(Number(r[1]), 1);
    },
    async succeeded(ip, username) {
      // The user's counter restarts; the IP's only gets this attempt back: one right password
      // must not reset the budget of someone guessing other accounts from the same address.
      await redis.multi().del(userKey(username)).decr(ipKey(ip)).exec();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Sessions

export const loginInput = z.object({
  username: z.string().trim().min(1, 'enter your user name').max(200),
  password: z.string().min(1, 'enter your password').max(1024),
});

export interface LoginResult {
  /** The cookie value; shown to nobody else, stored nowhere. */
  token: string;
  csrfToken: string;
  expiresAt: Date;
  user: UserRow;
}

let dummyHash: Promise<string> | undefined;

/**
 * Checks the password and opens a session. Unknown users, disabled users and wrong passwords
 * take the same time (a scrypt verification each) and give the same answer.
 */
export async function login(
  deps: Pick<ServiceDeps, 'db' | 'log'>,
  limiter: LoginLimiter,
  raw: z.input<typeof loginInput>,
  meta: { ip: string; userAgent?: string },
): Promise<LoginResult> {
  const input = loginInput.parse(raw);
  const wait = await limiter.attempt(meta.ip, input.username);
  if (wait > 0) throw rateLimited(`too many failed logins; try again in ${Math.ceil(wait / 60)} minute(s)`);
  const creds = await usersQ.findUserCredentials(deps.db, input.username);
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  const ok = await verifyPassword(input.password, creds?.passwordHash ?? (await dummyHash));
  if (!creds || !ok || creds.disabled) {
    deps.log.warn({ user: input.username.slice(0, 64), ip: meta.ip }, 'login failed');
    throw unauthorized('wrong user name or password');
  }
  await limiter.succeeded(meta.ip, input.username);
  const token = randomBytes(32).toString('base64url');
  const csrfToken = randomBytes(32).toString('base64url');
  const now = new Date();
  const expiresAt = new Date(now.getTime() + sessionIdleMs);
  await authQ.insertSession(deps.db, { idHash: sha256(token), userId: creds.id, csrfToken, expiresAt, ip: meta.ip, userAgent: meta.userAgent?.slice(0, 400) ?? null });
  await usersQ.updateUser(deps.db, creds.id, { lastLoginAt: now });
  deps.log.info({ user: creds.username, ip: meta.ip }, 'logged in');
  const { passwordHash: _h, ...user } = creds;
  return { token, csrfToken, expiresAt, user };
}

/** The principal of a session cookie, sliding its expiry; undefined when it is not (or no longer) valid. */
export async function authenticateSession(deps: Pick<ServiceDeps, 'db'>, token: string): Promise<Principal | undefined> {
  if (!token || token.length > 200) return undefined;
  const now = new Date();
  const found = await authQ.findLiveSession(deps.db, sha256(token), now);
  if (!found || found.user.disabled) return undefined;
  const { session, user } = found;
  const hardEnd = session.createdAt.getTime() + sessionMaxMs;
  if (hardEnd <= now.getTime()) return undefined;
  let expiresAt = session.expiresAt;
  if (now.getTime() - session.lastSeenAt.getTime() >= touchEveryMs) {
    expiresAt = new Date(Math.min(now.getTime() + sessionIdleMs, hardEnd));
    await authQ.touchSession(deps.db, session.idHash, now, expiresAt);
  }
  return { user, via: 'session', session: { idHash: session.idHash, csrfToken: session.csrfToken, expiresAt } };
}

export async function logout(deps: Pick<ServiceDeps, 'db'>, token: string): Promise<void> {
  if (token) await authQ.deleteSession(deps.db, sha256(token));
}

export async function deleteExpiredSessions(deps: Pick<ServiceDeps, 'db'>): Promise<number> {
  return authQ.deleteExpiredSessions(deps.db, new Date());
}

export const changePasswordInput = z
  .object({ current: z.string().min(1, 'enter your current password').max(1024), password: passwordSchema, repeat: z.string().optional() })
  .refine((v) => v.repeat === undefined || v.repeat === v.password, { message: 'the new passwords do not match', path: ['repeat'] });

/** Changes one's own password; every other session of the user ends. */
export async function changeOwnPassword(deps: Pick<ServiceDeps, 'db' | 'log'>, principal: Principal, raw: z.input<typeof changePasswordInput>): Promise<void> {
  const input = changePasswordInput.parse(raw);
  const creds = await usersQ.findUserCredentials(deps.db, principal.user.username);
  if (!creds || !(await verifyPassword(input.current, creds.passwordHash))) throw invalid('current: the current password is wrong');
  await usersQ.updateUser(deps.db, creds.id, { passwordHash: await hashPassword(input.password) });
  await authQ.deleteUserSessions(deps.db, creds.id, principal.session?.idHash);
  deps.log.info({ user: creds.username }, 'password changed');
}

/**
 * Asks the signed-in user for their password again before something that hands out secrets (the
 * recovery kit): a session left open on someone's desk is not enough. Counted like a login, so
 * the form cannot be used to guess the password.
 */
export async function confirmOwnPassword(deps: Pick<ServiceDeps, 'db' | 'log'>, limiter: LoginLimiter, principal: Principal, password: string, ip: string): Promise<void> {
  if (principal.via !== 'session') throw forbidden('this needs a console session (log in and re-enter your password), not an API token');
  const wait = await limiter.attempt(ip, principal.user.username);
  if (wait > 0) throw rateLimited(`too many wrong passwords; try again in ${Math.ceil(wait / 60)} minute(s)`);
  const creds = await usersQ.findUserCredentials(deps.db, principal.user.username);
  if (!creds || creds.disabled || !(await verifyPassword(password, creds.passwordHash))) {
    deps.log.warn({ user: principal.user.username, ip }, 'password confirmation failed');
    throw invalid('password: wrong password');
  }
  await limiter.succeeded(ip, principal.user.username);
}

/** Ends every session of a user (after an admin disables the account or resets its password). */
export async function endUserSessions(deps: Pick<ServiceDeps, 'db'>, userId: string): Promise<void> {
  await authQ.deleteUserSessions(deps.db, userId);
}

// ---------------------------------------------------------------------------------------------
// API tokens

const tokenPrefix = 'bct_';

export const createApiTokenInput = z.object({
  name: z.string().trim().min(1, 'give the token a name').max(100),
  /** Days until it expires; omitted = never. */
  expiresInDays: z.coerce.number().int().min(1).max(3650).optional(),
});

/** Creates a token acting as `principal`'s user with that user's role. The text is returned once. */
export async function createApiToken(deps: Pick<ServiceDeps, 'db' | 'log'>, principal: Principal, raw: z.input<typeof createApiTokenInput>): Promise<{ token: string; row: authQ.ApiTokenRow }> {
  const input = createApiTokenInput.parse(raw);
  const token = `${tokenPrefix}${randomBytes(32).toString('base64url')}`;
  const row = await authQ.insertApiToken(deps.db, {
    id: randomUUID(),
    userId: principal.user.id,
    name: input.name,
    tokenHash: sha256(token),
    prefix: token.slice(0, tokenPrefix.length + 6),
    expiresAt: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * 86400_000) : null,
  });
  deps.log.info({ user: principal.user.username, tokenId: row.id, name: row.name }, 'API token created');
  return { token, row };
}

export async function listApiTokens(deps: Pick<ServiceDeps, 'db'>, principal: Principal) {
  return authQ.listApiTokens(deps.db, principal.user.id);
}

export async function revokeApiToken(deps: Pick<ServiceDeps, 'db' | 'log'>, principal: Principal, id: string): Promise<void> {
  if (!z.string().uuid().safeParse(id).success || !(await authQ.revokeApiToken(deps.db, principal.user.id, id, new Date()))) throw notFound('API token', id);
  deps.log.info({ user: principal.user.username, tokenId: id }, 'API token revoked');
}

export async function authenticateApiToken(deps: Pick<ServiceDeps, 'db'>, token: string): Promise<Principal | undefined> {
  if (!token.startsWith(tokenPrefix) || token.length > 200) return undefined;
  const now = new Date();
  const found = await authQ.findLiveApiToken(deps.db, sha256(token), now);
  if (!found || found.user.disabled) return undefined;
  if (!found.token.lastUsedAt || now.getTime() - found.token.lastUsedAt.getTime() >= touchEveryMs) await authQ.touchApiToken(deps.db, found.token.id, now);
  return { user: found.user, via: 'token', tokenId: found.token.id };
}
