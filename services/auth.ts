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
 * Failed logins slow down the address they come from, and that address's attempts on that user
 * name, with exponential backoff; nothing counts per user name alone, so a stranger hammering
 * `admin` locks out only themself, never the admin logging in from elsewhere.
 * An attempt is counted before its password is checked (scrypt takes ~0.1 s): counting only
 * after a failure let every request already in flight through — 12 parallel wrong passwords
 * all got checked against a limit of 5.
 */
export interface LoginLimiter {
  /** Counts an attempt: 0 when it may go ahead, else the seconds until the caller may try again. */
  attempt(ip: string, username: string): Promise<number>;
  /** The attempt was right: the (user, address) pair starts over, and the address gets this attempt back. */
  succeeded(ip: string, username: string): Promise<void>;
}

/** How fast failures slow down one key: `free` failures cost nothing, the next waits `baseSeconds`, doubling up to `maxSeconds`. */
export interface BackoffRule {
  free: number;
  baseSeconds: number;
  maxSeconds: number;
}

export interface LoginLimits {
  /** Failures of one user name from one address. */
  pair: BackoffRule;
  /** Failures from one address (an IPv6 /64 counts as one), whatever the user names: an office behind one NAT must not be locked out by one person's typos. */
  address: BackoffRule;
  /** A key is forgotten this long after its last attempt. */
  forgetSeconds: number;
}

export const defaultLoginLimits: LoginLimits = {
  pair: { free: 5, baseSeconds: 30, maxSeconds: 900 },
  address: { free: 30, baseSeconds: 60, maxSeconds: 3600 },
  forgetSeconds: 86_400,
};

/** The wait after the n-th failure of a key (n counts this one), in ms; 0 while within the free budget. */
export function backoffMs(rule: BackoffRule, n: number): number {
  if (n < rule.free) return 0;
  return Math.min(rule.baseSeconds * 2 ** Math.min(n - rule.free, 30), rule.maxSeconds) * 1000;
}

/** The address a limit counts: IPv4 as is, IPv6 by its /64 (one host usually holds a whole /64). */
export function limitAddress(ip: string): string {
  if (!ip.includes(':') || ip.startsWith('::ffff:')) return ip.replace(/^::ffff:/, '');
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(Math.max(8 - h.length - t.length, 0)).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

const pairKey = (prefix: string, ip: string, username: string) => `${prefix}:pair:${sha256(`${limitAddress(ip)}\n${username.toLowerCase()}`)}`;
const addressKey = (prefix: string, ip: string) => `${prefix}:ip:${limitAddress(ip)}`;

/**
 * Check and count in one step (a script runs atomically in Redis). KEYS: the pair's and the
 * address's hashes {n: failures, until: ms}; ARGV: now (ms), then free/base ms/max ms for the
 * pair and for the address, then the forget time (ms). A refused attempt does not count, so
 * hammering a blocked pair does not also use up the address's budget. Returns the wait in ms.
 */
const attemptScript = `
local now = tonumber(ARGV[1])
local wait = 0
for i = 1, 2 do
  local u = tonumber(redis.call('HGET', KEYS[i], 'until') or '0')
  if u > now then wait = math.max(wait, u - now) end
end
if wait > 0 then return wait end
for i = 1, 2 do
  local free, base, max = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  local n = redis.call('HINCRBY', KEYS[i], 'n', 1)
  if n >= free then
    redis.call('HSET', KEYS[i], 'until', string.format('%d', now + math.min(base * 2 ^ math.min(n - free, 30), max)))
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[8])
end
return 0
`;

/** KEYS: pair, address; ARGV: the address's free budget, the forget time (ms). */
const succeededScript = `
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local n = redis.call('HINCRBY', KEYS[2], 'n', -1)
if n < tonumber(ARGV[1]) then redis.call('HDEL', KEYS[2], 'until') end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return n
`;

/**
 * The limiter in Redis, shared by every web process (so more processes do not mean more guesses,
 * and a restart forgets nothing). Redis down or slow (over `timeoutMs`) must neither open the
 * door nor break the login: each call then falls back to an in-memory limiter with the same
 * rules, per process, until Redis answers again.
 */
export function createRedisLoginLimiter(
  redis: Redis,
  opts: { limits?: LoginLimits; prefix?: string; timeoutMs?: number; onFallback?: (err: unknown) => void } = {},
): LoginLimiter {
  const limits = opts.limits ?? defaultLoginLimits;
  const prefix = opts.prefix ?? 'borgcube:login';
  const timeoutMs = opts.timeoutMs ?? 500;
  const memory = createMemoryLoginLimiter(limits);
  const bounded = <T>(p: Promise<T>) => {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs)))]).finally(() => clearTimeout(timer));
  };
  const rule = (r: BackoffRule) => [r.free, r.baseSeconds * 1000, r.maxSeconds * 1000];
  return {
    async attempt(ip, username) {
      try {
        const args = [Date.now(), ...rule(limits.pair), ...rule(limits.address), limits.forgetSeconds * 1000];
        const waitMs = Number(await bounded(redis.eval(attemptScript, 2, pairKey(prefix, ip, username), addressKey(prefix, ip), ...args)));
        return waitMs > 0 ? Math.max(Math.ceil(waitMs / 1000), 1) : 0;
      } catch (err) {
        opts.onFallback?.(err);
        return memory.attempt(ip, username);
      }
    },
    async succeeded(ip, username) {
      await memory.succeeded(ip, username);
      await bounded(redis.eval(succeededScript, 2, pairKey(prefix, ip, username), addressKey(prefix, ip), limits.address.free, limits.forgetSeconds * 1000)).catch((err: unknown) => opts.onFallback?.(err));
    },
  };
}

/**
 * The same rules in this process's memory: the fallback while Redis is away. At most `maxKeys`
 * keys; beyond that the oldest are dropped (an attacker filling it with fresh addresses gains
 * nothing the fresh addresses did not already give them).
 */
export function createMemoryLoginLimiter(limits: LoginLimits = defaultLoginLimits, maxKeys = 100_000): LoginLimiter {
  const keys = new Map<string, { n: number; until: number; forgetAt: number }>();
  const get = (k: string, now: number) => {
    const e = keys.get(k);
    if (e && e.forgetAt <= now) keys.delete(k);
    return e && e.forgetAt > now ? e : undefined;
  };
  return {
    attempt(ip, username) {
      const now = Date.now();
      const pk = pairKey('m', ip, username);
      const ak = addressKey('m', ip);
      const wait = Math.max(get(pk, now)?.until ?? 0, get(ak, now)?.until ?? 0) - now;
      if (wait > 0) return Promise.resolve(Math.max(Math.ceil(wait / 1000), 1));
      for (const [k, r] of [[pk, limits.pair], [ak, limits.address]] as const) {
        const e = get(k, now) ?? { n: 0, until: 0, forgetAt: 0 };
        e.n++;
        const d = backoffMs(r, e.n);
        if (d > 0) e.until = now + d;
        e.forgetAt = now + limits.forgetSeconds * 1000;
        keys.delete(k);
        keys.set(k, e); // most recent last: the oldest go first when full
        while (keys.size > maxKeys) keys.delete(keys.keys().next().value!);
      }
      return Promise.resolve(0);
    },
    succeeded(ip, username) {
      keys.delete(pairKey('m', ip, username));
      const e = keys.get(addressKey('m', ip));
      if (e && --e.n < limits.address.free) e.until = 0;
      return Promise.resolve();
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

/** A new session's cookie value and CSRF token (only the cookie's hash is stored). */
function newSessionSecrets(now = new Date()) {
  return { token: randomBytes(32).toString('base64url'), csrfToken: randomBytes(32).toString('base64url'), expiresAt: new Date(now.getTime() + sessionIdleMs) };
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
  if (wait > 0) throw rateLimited(`too many failed logins from your address; try again in ${wait < 120 ? `${wait} second(s)` : `${Math.ceil(wait / 60)} minute(s)`}`);
  const creds = await usersQ.findUserCredentials(deps.db, input.username);
  dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
  const ok = await verifyPassword(input.password, creds?.passwordHash ?? (await dummyHash));
  if (!creds || !ok || creds.disabled) {
    deps.log.warn({ user: input.username.slice(0, 64), ip: meta.ip }, 'login failed');
    throw unauthorized('wrong user name or password');
  }
  await limiter.succeeded(meta.ip, input.username);
  const now = new Date();
  const { token, csrfToken, expiresAt } = newSessionSecrets(now);
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

/**
 * Changes one's own password. Every session and API token of the user ends in the same
 * transaction; a caller on a session gets a fresh one (new cookie and CSRF token) in its place,
 * so the browser that made the change stays logged in and nothing issued before it survives.
 */
export async function changeOwnPassword(
  deps: Pick<ServiceDeps, 'db' | 'log'>,
  principal: Principal,
  raw: z.input<typeof changePasswordInput>,
  meta: { ip: string; userAgent?: string },
): Promise<{ session?: Omit<LoginResult, 'user'>; principal: Principal }> {
  const input = changePasswordInput.parse(raw);
  const creds = await usersQ.findUserCredentials(deps.db, principal.user.username);
  if (!creds || !(await verifyPassword(input.current, creds.passwordHash))) throw invalid('current: the current password is wrong');
  const passwordHash = await hashPassword(input.password);
  const fresh = principal.via === 'session' ? newSessionSecrets() : undefined;
  await deps.db.transaction(async (tx) => {
    await usersQ.updateUser(tx, creds.id, { passwordHash });
    await authQ.revokeUserAccess(tx, creds.id, new Date());
    if (fresh) await authQ.insertSession(tx, { idHash: sha256(fresh.token), userId: creds.id, csrfToken: fresh.csrfToken, expiresAt: fresh.expiresAt, ip: meta.ip, userAgent: meta.userAgent?.slice(0, 400) ?? null });
  });
  deps.log.info({ user: creds.username }, 'password changed; sessions and API tokens revoked');
  return {
    session: fresh,
    principal: fresh ? { user: principal.user, via: 'session', session: { idHash: sha256(fresh.token), csrfToken: fresh.csrfToken, expiresAt: fresh.expiresAt } } : principal,
  };
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
