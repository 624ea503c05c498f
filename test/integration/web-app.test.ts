// The web app through app.request() (and a real socket for WebSockets) against a real PostgreSQL
// and Redis: login, sessions, CSRF, roles, API tokens, escaping, the OpenAPI document, job
// listing, and the live job stream (catch-up from PostgreSQL, then Redis, resume after a seq).
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eq, sql } from 'drizzle-orm';
import * as jobsQ from '../../db/queries/jobs.js';
import { sessionsTable } from '../../db/schema.js';
import { loadConfig } from '../../infra/config.js';
import { createRedis, createEventPublisher, jobChannel } from '../../infra/events.js';
import { createLogger } from '../../infra/logger.js';
import { createRedisLoginLimiter, sha256 } from '../../services/auth.js';
import { addClient } from '../../services/clients.js';
import type { ServiceDeps } from '../../services/deps.js';
import { unavailable } from '../../services/errors.js';
import { addUser } from '../../services/users.js';
import { createApp, type WebApp } from '../../web/app.js';
import { operationOf } from '../../web/api/openapi.js';
import { createJobEventHub, type JobEventHub } from '../../infra/job-event-hub.js';
import { runCleanups } from '../harness/cleanup.js';
import { createTestDatabase, type TestDatabase } from '../harness/db.js';
import { Browser, password } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';

describe('web app', () => {
  let tdb: TestDatabase;
  let app: WebApp;
  let deps: ServiceDeps;
  let hub: JobEventHub;
  const redis = createRedis(loadConfig().redisUrl);
  const publisher = createEventPublisher(createRedis(loadConfig().redisUrl));
  const prefix = `borgcube-test:${process.pid}:${Date.now()}`;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    const config = loadConfig({ ...process.env, DATABASE_URL: tdb.url });
    deps = {
      db: tdb.handle.db,
      config,
      log: createLogger({ name: 'test', level: 'silent' }),
      masterKey: () => {
        throw new Error('no master key in this test');
      },
      storageAccount: () => {
        throw new Error('no storage account in this test');
      },
      temporal: () => Promise.reject(unavailable('no Temporal in this test')),
    };
    hub = createJobEventHub(createRedis(config.redisUrl), deps.log);
    app = createApp({
      services: deps,
      limiter: createRedisLoginLimiter(redis, { prefix }),
      hub,
      health: () => Promise.resolve({ ok: true, database: { ok: true }, redis: { ok: true }, temporal: { ok: false, error: 'none' }, workers: {} }),
      ws: { idlePollMs: 500 },
    });
    await addUser(deps, { username: 'admin', role: 'admin', password });
    await addUser(deps, { username: 'op', role: 'operator', password });
    await addUser(deps, { username: 'viewer', role: 'viewer', password });
  });
  afterAll(async () => {
    await hub.close();
    await publisher.close();
    await redis.quit();
    await runCleanups();
  });

  it('sends security headers, redirects pages to the login and answers 401 on the API when logged out', async () => {
    const b = new Browser(app);
    const page = await b.get('/jobs');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login?next=%2Fjobs');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const api = await b.get('/api/v1/jobs');
    expect(api.status).toBe(401);
    expect(((await api.json()) as { error: { kind: string } }).error.kind).toBe('unauthorized');
    for (const [m, p] of [['POST', '/api/v1/clients'], ['GET', '/api/v1/dashboard'], ['DELETE', '/api/v1/users/admin']] as const) {
      expect((await b.api(m, p, m === 'POST' ? {} : undefined)).status).toBe(401);
    }
    expect((await b.post('/clients', { name: 'x', host: 'h', paths: '/' }, { csrf: false })).status).toBe(303);
    const health = await b.get('/healthz');
    expect(health.status).toBe(200);
  });

  it('logs in with a session cookie whose hash alone is stored, and logs out', async () => {
    const b = new Browser(app);
    const bad = await b.login('admin', 'wrong password!!');
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('wrong user name or password');
    const unknown = await b.login('nobody-here', 'whatever password');
    expect(unknown.status).toBe(401);

    const res = await b.login('admin');
    expect(res.status).toBe(303);
    const set = res.headers.getSetCookie().find((c) => c.startsWith('borgcube_session='))!;
    expect(set).toMatch(/HttpOnly/i);
    expect(set).toMatch(/SameSite=Lax/i);
    expect(set).not.toMatch(/Secure/);
    const token = b.cookies.get('borgcube_session')!;
    const rows = await tdb.handle.db.select().from(sessionsTable).where(eq(sessionsTable.idHash, sha256(token)));
    expect(rows).toHaveLength(1);
    const dash = await b.get('/');
    expect(dash.status).toBe(200);
    expect(await dash.text()).toContain('Dashboard');

    // Logging out needs the CSRF token too.
    expect((await b.post('/logout', {}, { csrf: false })).status).toBe(403);
    expect((await b.post('/logout', {})).status).toBe(303);
    expect((await b.get('/')).status).toBe(303);
    expect(await tdb.handle.db.select().from(sessionsTable).where(eq(sessionsTable.idHash, sha256(token)))).toHaveLength(0);
  });

  it('marks cookies Secure and sends HSTS when the console is served over https', async () => {
    const tls = createApp({
      services: { ...deps, config: { ...deps.config, web: { ...deps.config.web, publicUrl: 'https://backup.example.org' } } },
      limiter: createRedisLoginLimiter(redis, { prefix: `${prefix}:tls` }),
      hub,
      health: () => Promise.reject(new Error('unused')),
    });
    const b = new Browser(tls);
    const res = await b.login('admin');
    expect(res.status).toBe(303);
    expect(res.headers.getSetCookie().find((c) => c.startsWith('borgcube_session='))).toMatch(/;\s*Secure/i);
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });

  it('refuses a login form posted without its double-submit token', async () => {
    const b = new Browser(app);
    await b.get('/login');
    const res = await app.request('/login', {
      method: 'POST',
      body: new URLSearchParams({ username: 'admin', password }),
      headers: { cookie: b.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(403);
  });

  it('rate-limits failed logins per user name (429), also for the right password', async () => {
    await addUser(deps, { username: 'target', role: 'viewer', password });
    const b = new Browser(app);
    for (let i = 0; i < 5; i++) expect((await b.login('target', `wrong password ${i}`)).status).toBe(401);
    const blocked = await b.login('target');
    expect(blocked.status).toBe(429);
    expect(await blocked.text()).toContain('too many failed logins');
  });

  it('counts parallel login attempts before checking them: no more than the limit get a password check', async () => {
    await addUser(deps, { username: 'target2', role: 'viewer', password });
    const tries = await Promise.all(Array.from({ length: 12 }, (_, i) => new Browser(app).login('target2', `wrong password ${i}`)));
    const statuses = tries.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
  });

  it('refuses state-changing requests without the CSRF token, accepts them with it', async () => {
    const b = new Browser(app);
    await b.login('admin');
    const form = { name: 'web-01', host: 'web-01.example.org', paths: '/etc\n/home', port: '22', user: 'root' };
    const refused = await b.post('/clients', form, { csrf: false });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('CSRF');
    const wrong = await app.request('/api/v1/clients', {
      method: 'POST',
      body: JSON.stringify({ name: 'web-02', host: 'h', paths: ['/'] }),
      headers: { cookie: b.cookieHeader(), 'content-type': 'application/json', 'x-csrf-token': 'nope' },
    });
    expect(wrong.status).toBe(403);
    const ok = await b.post('/clients', form);
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/clients/web-01');
    const page = await b.get('/clients/web-01');
    expect(await page.text()).toContain('web-01.example.org');
  });

  it('enforces roles on pages and API calls: a viewer sees no start or cancel controls and gets 403', async () => {
    const admin = new Browser(app);
    await admin.login('admin');
    await admin.api('POST', '/api/v1/clients', { name: 'roles-client', host: '127.0.0.1', paths: ['/srv'] });
    const repo = await insertRepositoryRow(deps.db, 'roles-repo');
    const client = (await (await admin.get('/api/v1/clients/roles-client')).json()) as { id: string };
    const jobId = randomUUID();
    await jobsQ.insertJob(deps.db, { id: jobId, kind: 'backup', clientId: client.id, repositoryId: repo.id });

    const viewer = new Browser(app);
    await viewer.login('viewer');
    const jobsPage = await (await viewer.get('/jobs')).text();
    expect(jobsPage).not.toContain('id="start-backup"');
    const jobPage = await (await viewer.get(`/jobs/${jobId}`)).text();
    expect(jobPage).not.toContain('cancel-form');
    expect((await viewer.get('/users')).status).toBe(403);
    expect((await viewer.api('POST', '/api/v1/jobs', { client: 'roles-client', repository: 'roles-repo' })).status).toBe(403);
    expect((await viewer.api('POST', `/api/v1/jobs/${jobId}/cancel`)).status).toBe(403);
    expect((await viewer.post(`/jobs/${jobId}/cancel`, {})).status).toBe(403);
    expect((await viewer.api('POST', '/api/v1/clients', { name: 'x', host: 'h', paths: ['/'] })).status).toBe(403);
    expect((await viewer.api('GET', '/api/v1/users')).status).toBe(403);
    expect((await viewer.api('GET', '/api/v1/jobs')).status).toBe(200);

    const op = new Browser(app);
    await op.login('op');
    expect(await (await op.get('/jobs')).text()).toContain('id="start-backup"');
    expect(await (await op.get(`/jobs/${jobId}`)).text()).toContain('cancel-form');
    expect((await op.api('POST', '/api/v1/clients', { name: 'y', host: 'h', paths: ['/'] })).status).toBe(403);
  });

  it('API tokens act as their user, need no CSRF token, and stop working when revoked', async () => {
    const b = new Browser(app);
    await b.login('op');
    const created = await b.api('POST', '/api/v1/tokens', { name: 'script' });
    expect(created.status).toBe(201);
    const { token, id } = (await created.json()) as { token: string; id: string };
    expect(token).toMatch(/^bct_/);
    const bearer = { authorization: `Bearer ${token}` };
    const list = await app.request('/api/v1/jobs?limit=5', { headers: bearer });
    expect(list.status).toBe(200);
    // Bearer requests carry no ambient credential: no CSRF token needed, role still enforced.
    const add = await app.request('/api/v1/clients', { method: 'POST', body: JSON.stringify({ name: 'z', host: 'h', paths: ['/'] }), headers: { ...bearer, 'content-type': 'application/json' } });
    expect(add.status).toBe(403);
    const listed = (await (await b.api('GET', '/api/v1/tokens')).json()) as { tokens: Array<Record<string, unknown>> };
    expect(listed.tokens[0]).not.toHaveProperty('tokenHash');
    expect((await b.api('DELETE', `/api/v1/tokens/${id}`)).status).toBe(204);
    expect((await app.request('/api/v1/jobs', { headers: bearer })).status).toBe(401);
    expect((await app.request('/api/v1/jobs', { headers: { authorization: 'Bearer bct_made-up' } })).status).toBe(401);
  });

  it('validates API input with zod and answers 400 with the issues', async () => {
    const b = new Browser(app);
    await b.login('admin');
    const res = await b.api('POST', '/api/v1/clients', { name: '../evil', host: 'h', paths: ['relative'] });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { kind: string; issues: Array<{ path: string }> } };
    expect(body.error.kind).toBe('invalid');
    expect(body.error.issues.map((i) => i.path)).toEqual(expect.arrayContaining(['name', 'paths.0']));
    expect((await b.api('GET', '/api/v1/jobs/not-a-uuid')).status).toBe(400);
    expect((await b.api('GET', `/api/v1/jobs/${randomUUID()}`)).status).toBe(404);
    expect((await b.api('POST', '/api/v1/clients', { name: 'roles-client', host: 'h', paths: ['/'] })).status).toBe(409);
  });

  it('shows what clients control as text: a file named <script> in a log, host names, archive names', async () => {
    const b = new Browser(app);
    await b.login('admin');
    const xss = '<script>alert(1)</script>';
    await addClient(deps, { name: 'xss-client', host: '127.0.0.1', paths: ['/srv'] });
    const repo = await insertRepositoryRow(deps.db, 'xss-repo');
    const client = (await (await b.get('/api/v1/clients/xss-client')).json()) as { id: string };
    const jobId = randomUUID();
    await jobsQ.insertJob(deps.db, { id: jobId, kind: 'backup', clientId: client.id, repositoryId: repo.id, archiveName: `a${xss}`, state: 'failed', error: `boom ${xss}` });
    await jobsQ.insertLogLines(deps.db, [{ jobId, seq: 1, time: new Date(), level: 'INFO', type: 'file_status', msgid: null, message: `A /srv/${xss}` }]);
    const html = await (await b.get(`/jobs/${jobId}`)).text();
    expect(html).not.toContain(xss);
    expect(html).toContain('A /srv/&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('boom &lt;script&gt;');
    expect(html).not.toMatch(/<script>(?!<\/script>)/);
    // Every script tag on the page is an external module from /static.
    for (const m of html.matchAll(/<script\b[^>]*>/g)) expect(m[0]).toMatch(/src="\/static\//);
  });

  it('lets an admin add users, reset a password once shown, and disable accounts, ending their sessions', async () => {
    const admin = new Browser(app);
    await admin.login('admin');
    const added = await admin.post('/users', { username: 'temp', role: 'operator', password: '' });
    expect(added.status).toBe(201);
    const shown = /id="new-password">[^<]*<strong>temp<\/strong>[^<]*<code>([^<]+)<\/code>/.exec(await added.text());
    expect(shown).toBeTruthy();
    const temp = new Browser(app);
    expect((await temp.login('temp', shown![1])).status).toBe(303);
    const reset = await admin.post('/users/temp/password', {});
    const newPw = /<code>([^<]+)<\/code>/.exec(await reset.text())![1]!;
    expect(newPw).not.toBe(shown![1]);
    expect((await temp.get('/')).status).toBe(303);
    expect((await temp.login('temp', newPw)).status).toBe(303);
    expect((await admin.post('/users/temp', { disabled: 'true' })).status).toBe(303);
    expect((await temp.get('/')).status).toBe(303);
    expect((await temp.login('temp', newPw)).status).toBe(401);
    // An admin cannot lock themself out.
    const self = await admin.api('PATCH', '/api/v1/users/admin', { role: 'viewer' });
    expect(self.status).toBe(400);
  });

  it('lists jobs with filters and keyset pages', async () => {
    const b = new Browser(app);
    await b.login('viewer');
    const repo = await insertRepositoryRow(deps.db, 'page-repo');
    const base = Date.now() - 3600_000;
    for (let i = 0; i < 25; i++) {
      await jobsQ.insertJob(deps.db, { id: randomUUID(), kind: 'backup', repositoryId: repo.id, state: i % 2 ? 'succeeded' : 'failed', createdAt: new Date(base + i * 1000) });
    }
    // Jobs created within one millisecond, as the database keeps them (microseconds): a page
    // that ends inside that millisecond must not lose the rest.
    const ms = new Date(base + 30_000).toISOString().replace('Z', '');
    for (let i = 0; i < 10; i++) {
      await deps.db.execute(sql`insert into jobs (id, kind, repository_id, state, created_at) values (${randomUUID()}, 'backup', ${repo.id}, 'succeeded', ${`${ms}${String(100 + i * 50).padStart(3, '0')}Z`}::timestamptz)`);
    }
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await b.api('GET', `/api/v1/jobs?repository=page-repo&limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      const body = (await res.json()) as { jobs: Array<{ id: string }>; nextCursor: string | null };
      for (const j of body.jobs) seen.add(j.id);
      cursor = body.nextCursor;
      pages++;
    } while (cursor);
    expect(seen.size).toBe(35);
    expect(pages).toBe(5);
    const failed = (await (await b.api('GET', '/api/v1/jobs?repository=page-repo&state=failed&limit=100')).json()) as { jobs: unknown[] };
    expect(failed.jobs).toHaveLength(13);
    const midPage = (await (await b.api('GET', '/api/v1/jobs?repository=page-repo&limit=5')).json()) as { nextCursor: string };
    expect(midPage.nextCursor).toMatch(/^\d{16}_/);
    const page = await (await b.get('/jobs?repository=page-repo&state=&limit=10')).text();
    expect(page).toContain('id="next-page"');
  });

  it('documents every /api/v1 route in the OpenAPI document, generated from the same zod schemas', async () => {
    const api = app.routes.filter((r) => r.path.startsWith('/api/v1/') && r.method !== 'ALL' && r.path !== '/api/v1/openapi.json');
    const routes = new Map<string, boolean>();
    for (const r of api) routes.set(`${r.method} ${r.path}`, (routes.get(`${r.method} ${r.path}`) ?? false) || Boolean(operationOf(r.handler)));
    for (const [route, documented] of routes) expect(documented, `${route} has no op()`).toBe(true);
    const res = await app.request('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties: Record<string, unknown> } }> } }>> };
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/clients', '/clients/{name}', '/jobs', '/jobs/{id}', '/jobs/{id}/cancel', '/repositories/{name}/archives', '/users', '/tokens', '/dashboard']));
    expect(Object.keys(doc.paths['/clients']!.post!.requestBody!.content['application/json']!.schema.properties)).toEqual(expect.arrayContaining(['name', 'host', 'paths']));
    expect(routes.size).toBeGreaterThanOrEqual(Object.values(doc.paths).reduce((n, p) => n + Object.keys(p).length, 0));
  });

  it('renders the dashboard with failing and stale clients', async () => {
    const b = new Browser(app);
    await b.login('viewer');
    await addClient(deps, { name: 'never-backed-up', host: '10.0.0.9', paths: ['/'] });
    const res = await b.get('/');
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).toContain('never-backed-up');
    const api = (await (await b.api('GET', '/api/v1/dashboard')).json()) as { clients: Array<{ name: string; failing: boolean; stale: boolean }> };
    expect(api.clients.find((c) => c.name === 'xss-client')?.failing).toBe(true);
    expect(api.clients.find((c) => c.name === 'never-backed-up')?.stale).toBe(false);
  });

  describe('live job stream over WebSocket', () => {
    let base: string;
    let close: () => Promise<void>;
    let jobId: string;
    let cookie: string;

    beforeAll(async () => {
      const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
      app.injectWebSocket(server);
      await new Promise<void>((r) => (server.listening ? r() : server.once('listening', () => r())));
      base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
      close = () =>
        new Promise((r) => {
          app.closeWebSockets();
          server.close(() => r());
        });
      const b = new Browser(app);
      await b.login('viewer');
      cookie = b.cookieHeader();
      const repo = await insertRepositoryRow(deps.db, 'ws-repo');
      jobId = randomUUID();
      await jobsQ.insertJob(deps.db, { id: jobId, kind: 'backup', repositoryId: repo.id });
      await jobsQ.insertLogLines(
        deps.db,
        [1, 2, 3].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'borgcube', msgid: null, message: `stored ${seq}` })),
      );
    });
    afterAll(async () => close());

    interface Msg {
      type: string;
      seq?: number;
      message?: string;
      state?: string;
      n?: number;
    }

    function open(path: string, headers: Record<string, string> = { cookie }) {
      const ws = new WebSocket(`ws://${base}${path}`, { headers });
      const messages: Msg[] = [];
      const waiters: Array<() => void> = [];
      ws.on('message', (d: Buffer) => {
        messages.push(JSON.parse(d.toString()) as Msg);
        for (const w of waiters.splice(0)) w();
      });
      const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
      const until = async (pred: (m: Msg[]) => boolean, ms = 5000) => {
        const end = Date.now() + ms;
        while (!pred(messages)) {
          if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(messages)}`);
          await new Promise<void>((r) => {
            waiters.push(r);
            setTimeout(r, 100);
          });
        }
      };
      return { ws, messages, until, closed };
    }

    function refused(path: string, headers: Record<string, string>): Promise<number> {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://${base}${path}`, { headers });
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => reject(new Error('the socket opened')));
        ws.on('error', () => {});
      });
    }

    it('refuses unauthenticated (401), cross-origin (403) and unknown-job (404) upgrades', async () => {
      expect(await refused(`/ws/jobs/${jobId}`, {})).toBe(401);
      expect(await refused(`/ws/jobs/${jobId}`, { cookie: 'borgcube_session=forged' })).toBe(401);
      expect(await refused(`/ws/jobs/${jobId}`, { cookie, origin: 'https://evil.example' })).toBe(403);
      expect(await refused(`/ws/jobs/${randomUUID()}`, { cookie })).toBe(404);
    });

    it('sends the stored tail, then live lines and progress without doubles, and resumes after a seq', async () => {
      const a = open(`/ws/jobs/${jobId}?after=1`, { cookie, origin: `http://${base}` });
      await a.until((m) => m.filter((x) => x.type === 'log').length === 2);
      expect(a.messages[0]!.type).toBe('hello');
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3]);
      // Live: a line already stored (3) is dropped; 4 and 5 pass; progress passes.
      const live = (seq: number) => ({ type: 'log' as const, seq, time: new Date().toISOString(), level: 'INFO', kind: 'file_status', msgid: null, message: `live ${seq}` });
      await jobsQ.insertLogLines(deps.db, [4, 5].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'file_status', msgid: null, message: `live ${seq}` })));
      await publisher.publish(jobId, live(3));
      await publisher.publish(jobId, live(4));
      await publisher.publish(jobId, { type: 'progress', originalSize: 1000, compressedSize: 500, deduplicatedSize: 100, nfiles: 3, path: '/srv/<b>x</b>', time: Date.now() / 1000, n: 1 });
      await publisher.publish(jobId, live(5));
      await a.until((m) => m.some((x) => x.seq === 5));
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3, 4, 5]);
      expect(a.messages.filter((x) => x.type === 'progress')).toHaveLength(1);

      // A line that is published before it reaches PostgreSQL, after a gap: filled from the database.
      await publisher.publish(jobId, live(8));
      await new Promise((r) => setTimeout(r, 300));
      await jobsQ.insertLogLines(deps.db, [6, 7, 8].map((seq) => ({ jobId, seq, time: new Date(), level: 'INFO', type: 'file_status', msgid: null, message: `late ${seq}` })));
      await a.until((m) => m.some((x) => x.seq === 8));
      expect(a.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([2, 3, 4, 5, 6, 7, 8]);

      // Reconnect with the last seq seen: nothing lost, nothing doubled.
      a.ws.close();
      const b = open(`/ws/jobs/${jobId}?after=6`);
      await b.until((m) => m.filter((x) => x.type === 'log').length === 2);
      expect(b.messages.filter((x) => x.type === 'log').map((x) => x.seq)).toEqual([7, 8]);

      // The job ends: the final state is sent and the socket closes normally.
      await jobsQ.completeJob(deps.db, jobId, 'succeeded', null, null);
      await publisher.publish(jobId, { type: 'state', jobId, state: 'succeeded', phase: 'done', error: null });
      await b.until((m) => m.some((x) => x.type === 'state'));
      expect(await b.closed).toBe(1000);
      expect(b.messages.at(-1)).toMatchObject({ type: 'state', state: 'succeeded' });
      await new Promise((r) => setTimeout(r, 100));
      expect(hub.channels()).toBe(0);
    });

    it('shares one Redis subscription between the viewers of a job', async () => {
      const repo = await insertRepositoryRow(deps.db, 'ws-repo-2');
      const id = randomUUID();
      await jobsQ.insertJob(deps.db, { id, kind: 'backup', repositoryId: repo.id });
      const viewers = Array.from({ length: 5 }, () => open(`/ws/jobs/${id}`));
      await Promise.all(viewers.map((v) => v.until((m) => m.some((x) => x.type === 'hello'))));
      expect(hub.channels()).toBe(1);
      const numsub = (await redis.call('PUBSUB', 'NUMSUB', jobChannel(id))) as [string, number];
      expect(Number(numsub[1])).toBe(1);
      // The stream is one-way: a viewer that sends something is closed (1003).
      viewers[0]!.ws.send('hello?');
      expect(await viewers[0]!.closed).toBe(1003);
      for (const v of viewers) v.ws.close();
      await Promise.all(viewers.map((v) => v.closed));
      await new Promise((r) => setTimeout(r, 100));
      expect(hub.channels()).toBe(0);
    });
  });
});
