// Issue 21 point 12: the console and API against hostile HTTP and hostile clients, on a real stack
// (PostgreSQL, Redis, Temporal, the worker, sshd, a client host): body limits before and after
// login, credentials revoked with a password change or a disabled account (console, API, CLI),
// login limits a stranger cannot turn against the admin (also with Redis gone), an anonymous
// /healthz without error text, no GET that takes the repository's lease, and a client's borg
// printing NUL and terminal escapes into its log.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../infra/events.js';
import { createJobEventHub } from '../../infra/job-event-hub.js';
import { createRedisLoginLimiter, type LoginLimiter } from '../../services/auth.js';
import { addClient } from '../../services/clients.js';
import { addUser } from '../../services/users.js';
import { createApp, type WebApp } from '../../web/app.js';
import type { HealthReport } from '../../web/env.js';
import { backup } from '../harness/backup.js';
import { createClientHost, type ClientHost } from '../harness/client-host.js';
import { registerCleanup, runCleanups } from '../harness/cleanup.js';
import { startClientSshd } from '../harness/sshd.js';
import { startStack, type TestStack } from '../harness/stack.js';
import { Browser, password } from './web-browser.js';

// What a stranger's monitoring probe must not learn: addresses, host names, error texts.
const brokenHealth: HealthReport = {
  ok: true,
  database: { ok: true },
  redis: { ok: false, error: 'connect ECONNREFUSED 10.9.8.7:6379' },
  temporal: { ok: false, error: 'temporal.internal.example:7233 unreachable' },
  workers: { 'borgcube': false, 'storage-vault-07.internal': false },
};

/** A borg that prints NUL, ESC sequences and a C1 CSI into its log before doing a real backup. */
const hostileBorg = String.raw`#!/bin/sh
if [ "$1" = "create" ]; then
  printf '{"type": "log_message", "levelname": "WARNING", "name": "borg", "msgid": "evil\\u0000id", "message": "json nul[\\u0000] clear[\\u001b[2J] title[\\u001b]0;pwned\\u0007] csi[\\u009b31m]"}\n' >&2
  printf 'raw nul[\000] red[\033[31m]\n' >&2
fi
exec borg "$@"
`;

describe('console and API against hostile input', () => {
  let stack: TestStack;
  let host: ClientHost;
  let app: WebApp;
  const prefix = `borgcube-test:${process.pid}:${Date.now()}`;
  const apps: WebApp[] = [];

  /** An app over the stack, with its own login limiter (and Redis) and health report. */
  function makeApp(o: { limiter?: LoginLimiter; health?: HealthReport } = {}): WebApp {
    const redis = createRedis(stack.config.redisUrl);
    const hub = createJobEventHub(createRedis(stack.config.redisUrl), stack.deps.log);
    registerCleanup('web app redis', async () => {
      await hub.close();
      await redis.quit();
    });
    const a = createApp({
      services: stack.deps,
      limiter: o.limiter ?? createRedisLoginLimiter(redis, { prefix: `${prefix}:${apps.length}` }),
      hub,
      health: () => Promise.resolve(o.health ?? brokenHealth),
    });
    apps.push(a);
    return a;
  }

  beforeAll(async () => {
    stack = await startStack();
    const sshd = await startClientSshd();
    host = await createClientHost({ authorizedKeys: [stack.serverPublicKey], tree: { 'data/a.txt': 'alpha\n', 'hostile-borg': { type: 'file', mode: 0o755, content: hostileBorg } } });
    const r = await stack.cli(['repo', 'add', 'r1', '--path', `${stack.dataDir}-repos/r1`]);
    expect(r.code, r.err).toBe(0);
    await addClient(stack.deps, { name: 'hostile', host: sshd.host, port: sshd.port, user: host.username, paths: [host.path('data')], borgPath: host.path('hostile-borg') });
    for (const [username, role] of [['admin', 'admin'], ['op', 'operator'], ['viewer', 'viewer']] as const) await addUser(stack.deps, { username, role, password });
    app = makeApp();
  });
  afterAll(runCleanups);

  describe('body limits', () => {
    it('answers 413 to an oversized body before login, whether announced or streamed, and the login still works', async () => {
      const b = new Browser(app);
      const page = await b.get('/login');
      const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
      const form = (extra: string) => new URLSearchParams({ _csrf: csrf, username: 'admin', password, next: '/', junk: extra }).toString();
      // Announced: refused from the header, before a byte is read.
      const announced = await b.request('/login', { method: 'POST', body: form(''), headers: { cookie: b.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(1 << 30) } });
      expect(announced.status).toBe(413);
      expect(await announced.text()).toContain('larger than 16 KiB');
      // Streamed without a length: cut off once 16 KiB have arrived.
      const chunk = new TextEncoder().encode(form('x'.repeat(64 * 1024)));
      const streamed = await b.request('/login', {
        method: 'POST',
        body: new ReadableStream({ start: (c) => (c.enqueue(chunk), c.close()) }),
        headers: { cookie: b.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
        duplex: 'half',
      });
      expect(streamed.status).toBe(413);
      // Any other route answers the same before login, JSON on the API.
      const api = await b.request('/api/v1/clients', { method: 'POST', body: JSON.stringify({ pad: 'y'.repeat(32 * 1024) }), headers: { 'content-type': 'application/json' } });
      expect(api.status).toBe(413);
      expect(((await api.json()) as { error: { kind: string } }).error.kind).toBe('too-large');
      expect((await b.login('admin')).status).toBe(303);
    });

    it('lets a logged-in user send up to 1 MiB, and answers 413 with a JSON error beyond', async () => {
      const b = new Browser(app);
      await b.login('admin');
      const ok = await b.api('POST', '/api/v1/clients', { name: 'big-ok', host: 'h', paths: ['/srv'], excludes: Array.from({ length: 1000 }, (_, i) => `*.tmp${i}-${'z'.repeat(200)}`) });
      expect(ok.status).toBe(201);
      const big = await b.api('POST', '/api/v1/clients', { name: 'big', host: 'h', paths: ['/srv'], pad: 'x'.repeat(2 << 20) });
      expect(big.status).toBe(413);
      expect(await big.json()).toEqual({ error: { kind: 'too-large', message: 'the request body is larger than 1 MiB, the most this server accepts here' } });
    });
  });

  describe('password changes and disabled users revoke sessions and API tokens', () => {
    /** A logged-in browser of `username` and an API token it made. */
    async function sessionAndToken(a: WebApp, username: string) {
      const b = new Browser(a);
      expect((await b.login(username)).status).toBe(303);
      const t = (await (await b.api('POST', '/api/v1/tokens', { name: 'script' })).json()) as { token: string };
      const tokenWorks = async () => (await a.request('/api/v1/jobs?limit=1', { headers: { authorization: `Bearer ${t.token}` } })).status === 200;
      expect(await tokenWorks()).toBe(true);
      const sessionWorks = async () => (await b.get('/api/v1/session')).status === 200;
      return { b, tokenWorks, sessionWorks };
    }

    it('an admin resetting a password through the API', async () => {
      await addUser(stack.deps, { username: 'u-api', role: 'viewer', password });
      const u = await sessionAndToken(app, 'u-api');
      const admin = new Browser(app);
      await admin.login('admin');
      expect((await admin.api('PATCH', '/api/v1/users/u-api', { password: 'another long password' })).status).toBe(200);
      expect(await u.sessionWorks()).toBe(false);
      expect(await u.tokenWorks()).toBe(false);
    });

    it('an admin disabling a user in the console; enabling them again revives nothing', async () => {
      await addUser(stack.deps, { username: 'u-web', role: 'viewer', password });
      const u = await sessionAndToken(app, 'u-web');
      const admin = new Browser(app);
      await admin.login('admin');
      expect((await admin.post('/users/u-web', { disabled: 'true' })).status).toBe(303);
      expect(await u.tokenWorks()).toBe(false);
      expect(await u.sessionWorks()).toBe(false);
      expect((await admin.post('/users/u-web', { disabled: 'false' })).status).toBe(303);
      expect(await u.tokenWorks()).toBe(false);
    });

    it('the CLI: user set-password and user disable', async () => {
      await addUser(stack.deps, { username: 'u-cli', role: 'viewer', password });
      const u = await sessionAndToken(app, 'u-cli');
      const set = await stack.cli(['user', 'set-password', 'u-cli', '--password-stdin'], { input: 'a new long password\n' });
      expect(set.code, set.err).toBe(0);
      expect(await u.tokenWorks()).toBe(false);
      expect(await u.sessionWorks()).toBe(false);
      expect((await new Browser(app).login('u-cli')).status).toBe(401); // the old password no longer logs in
      const b = new Browser(app);
      expect((await b.login('u-cli', 'a new long password')).status).toBe(303);
      const t = (await (await b.api('POST', '/api/v1/tokens', { name: 'second' })).json()) as { token: string };
      const dis = await stack.cli(['user', 'disable', 'u-cli']);
      expect(dis.code, dis.err).toBe(0);
      expect((await b.get('/api/v1/session')).status).toBe(401);
      expect((await stack.cli(['user', 'enable', 'u-cli'])).code).toBe(0);
      expect((await app.request('/api/v1/jobs', { headers: { authorization: `Bearer ${t.token}` } })).status).toBe(401);
    });

    it("a user changing their own password: everything else ends, this browser continues on a new session", async () => {
      await addUser(stack.deps, { username: 'u-self', role: 'viewer', password });
      const u = await sessionAndToken(app, 'u-self');
      const other = new Browser(app);
      await other.login('u-self');
      const oldCookie = u.b.cookies.get('borgcube_session')!;
      const res = await u.b.post('/account/password', { current: password, password: 'my new long password', repeat: 'my new long password' });
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('Password changed');
      expect(u.b.cookies.get('borgcube_session')).not.toBe(oldCookie);
      expect(await u.tokenWorks()).toBe(false);
      expect((await other.get('/api/v1/session')).status).toBe(401);
      expect((await app.request('/api/v1/session', { headers: { cookie: `borgcube_session=${oldCookie}` } })).status).toBe(401);
      const s = (await (await u.b.get('/api/v1/session')).json()) as { csrfToken: string; user: { username: string } };
      expect(s.user.username).toBe('u-self');
      u.b.csrf = s.csrfToken;
      expect((await u.b.api('POST', '/api/v1/tokens', { name: 'after' })).status).toBe(201);
    });
  });

  describe('login limits', () => {
    it("a stranger's wrong passwords for admin lock out the stranger, not the admin at another address", async () => {
      const stranger = new Browser(app, '203.0.113.66');
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) statuses.push((await stranger.login('admin', `guess ${i} of the admin's password`)).status);
      expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
      // Even the right password waits at the stranger's address…
      expect((await stranger.login('admin')).status).toBe(429);
      // …while the admin, elsewhere, logs in at once.
      expect((await new Browser(app, '198.51.100.7').login('admin')).status).toBe(303);
    });

    it('limits one address across user names (30 failures), IPv6 by its /64', async () => {
      const one = (n: number) => new Browser(app, `2001:db8:1:2::${n.toString(16)}`);
      for (let i = 0; i < 30; i++) expect((await one(i + 1).login(`nobody-${i}`, 'not a password at all')).status).toBe(401);
      const blocked = await one(0xbeef).login('viewer');
      expect(blocked.status).toBe(429);
      expect(await blocked.text()).toMatch(/too many failed logins from your address; try again in \d+ second/);
      expect((await new Browser(app, '2001:db8:1:3::1').login('viewer')).status).toBe(303);
    });

    it('backs off exponentially: each failure past the free ones doubles the wait', async () => {
      const redis = createRedis(stack.config.redisUrl);
      registerCleanup('limiter redis', () => void redis.disconnect());
      const limiter = createRedisLoginLimiter(redis, { prefix: `${prefix}:backoff`, limits: { pair: { free: 2, baseSeconds: 2, maxSeconds: 60 }, address: { free: 100, baseSeconds: 60, maxSeconds: 60 }, forgetSeconds: 600 } });
      expect(await limiter.attempt('192.0.2.200', 'admin')).toBe(0);
      expect(await limiter.attempt('192.0.2.200', 'admin')).toBe(0); // the 2nd failure: 2 s from now
      const first = await limiter.attempt('192.0.2.200', 'admin');
      expect(first).toBeGreaterThanOrEqual(1);
      expect(first).toBeLessThanOrEqual(2);
      await new Promise((r) => setTimeout(r, 2100));
      expect(await limiter.attempt('192.0.2.200', 'admin')).toBe(0); // the 3rd failure: 4 s
      const second = await limiter.attempt('192.0.2.200', 'admin');
      expect(second).toBeGreaterThanOrEqual(3);
      expect(second).toBeLessThanOrEqual(4);
      // Another address, same user: untouched.
      expect(await limiter.attempt('192.0.2.201', 'admin')).toBe(0);
      // A right password resets the pair.
      await new Promise((r) => setTimeout(r, 4100));
      expect(await limiter.attempt('192.0.2.200', 'admin')).toBe(0);
      await limiter.succeeded('192.0.2.200', 'admin');
      expect(await limiter.attempt('192.0.2.200', 'admin')).toBe(0);
    });

    it('with Redis gone the login neither fails nor stops limiting', async () => {
      const dead = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: 1, enableOfflineQueue: true, retryStrategy: () => 1000 });
      dead.on('error', () => {});
      registerCleanup('dead redis', () => void dead.disconnect());
      const fallbacks: unknown[] = [];
      const a = makeApp({ limiter: createRedisLoginLimiter(dead, { prefix: `${prefix}:dead`, onFallback: (e) => fallbacks.push(e) }) });
      expect((await new Browser(a, '192.0.2.210').login('op')).status).toBe(303);
      const stranger = new Browser(a, '192.0.2.211');
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await stranger.login('op', `wrong ${i}`)).status);
      expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
      expect(fallbacks.length).toBeGreaterThan(0);
    });
  });

  it('/healthz tells strangers ok or degraded per component, nothing more; logged-in users get the details', async () => {
    const b = new Browser(app);
    const res = await b.get('/healthz');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ status: 'degraded', database: 'ok', redis: 'degraded', temporal: 'degraded', workers: 'degraded' });
    for (const secret of ['ECONNREFUSED', '10.9.8.7', 'temporal.internal', 'vault-07', 'error']) expect(text).not.toContain(secret);
    const down = makeApp({ health: { ...brokenHealth, ok: false, database: { ok: false, error: 'password authentication failed for user "borgcube"' } } });
    const d = await down.request('/healthz');
    expect(d.status).toBe(503);
    expect(await d.json()).toEqual({ status: 'down', database: 'degraded', redis: 'degraded', temporal: 'degraded', workers: 'degraded' });
    expect((await b.get('/api/v1/health')).status).toBe(401);
    await b.login('viewer');
    const full = await b.api('GET', '/api/v1/health');
    expect(full.status).toBe(200);
    expect(await full.json()).toEqual(brokenHealth);
  });

  describe('a client borg that prints NUL bytes and terminal escapes', () => {
    let jobId: string;

    it('its backup succeeds, and the lines are stored with the control characters as visible \\xNN', async () => {
      const job = await backup(stack, 'hostile', 'r1');
      jobId = job.id;
      const { lines } = (await (await apiAs('viewer', `/api/v1/jobs/${jobId}/logs?tail=5000`)).json()) as { lines: Array<{ level: string; msgid: string | null; message: string }> };
      const json = lines.find((l) => l.message.startsWith('json nul'));
      expect(json).toMatchObject({ level: 'WARNING', msgid: 'evil\\x00id', message: 'json nul[\\x00] clear[\\x1b[2J] title[\\x1b]0;pwned\\x07] csi[\\x9b31m]' });
      expect(lines.find((l) => l.message.startsWith('raw nul'))?.message).toBe('raw nul[\\x00] red[\\x1b[31m]');
      for (const l of lines) expect(l.message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    });

    it('the console shows them HTML-escaped, and `job logs` prints no raw escape to the terminal', async () => {
      const b = new Browser(app);
      await b.login('viewer');
      const html = await (await b.get(`/jobs/${jobId}`)).text();
      expect(html).toContain('json nul[\\x00] clear[\\x1b[2J]');
      expect(html).not.toMatch(/[\u0000\u001b\u009b]/);
      const r = await stack.cli(['job', 'logs', jobId, '--lines', '5000']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain('raw nul[\\x00] red[\\x1b[31m]');
      expect(r.out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    });
  });

  describe('no GET with side effects', () => {
    it('reading the repository live (borg list under its lease) is a POST with the CSRF token; GET only shows what is recorded', async () => {
      const op = new Browser(app);
      await op.login('op');
      const page = await op.get('/repositories/r1?live=1');
      expect(page.status).toBe(200);
      const text = await page.text();
      expect(text).not.toContain('Read from the repository just now');
      expect(text).toMatch(/<form method="post" action="\/repositories\/r1\/live"[^>]*id="read-live">/);
      expect((await op.get('/api/v1/repositories/r1/archives/live')).status).toBe(404);
      expect((await op.post('/repositories/r1/live', {}, { csrf: false })).status).toBe(403);
      const live = await op.post('/repositories/r1/live', {});
      expect(live.status).toBe(200);
      expect(await live.text()).toContain('Read from the repository just now');
      const api = await op.api('POST', '/api/v1/repositories/r1/archives/live');
      expect(api.status).toBe(200);
      expect(((await api.json()) as { archives: unknown[] }).archives.length).toBeGreaterThanOrEqual(1);
      const viewer = new Browser(app);
      await viewer.login('viewer');
      expect((await viewer.post('/repositories/r1/live', {})).status).toBe(403);
    });
  });

  async function apiAs(username: string, path: string) {
    const b = new Browser(app);
    await b.login(username);
    return b.api('GET', path);
  }
});
