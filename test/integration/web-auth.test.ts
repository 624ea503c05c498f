// The web app's access control against a real PostgreSQL and Redis: security headers, login,
// sessions, CSRF, rate limits, roles, API tokens, user administration and API input validation.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { eq } from 'drizzle-orm';
import * as jobsQ from '../../db/queries/jobs.js';
import { sessionsTable } from '../../db/schema.js';
import { createRedisLoginLimiter, sha256 } from '../../services/auth.js';
import type { ServiceDeps } from '../../services/deps.js';
import { addUser } from '../../services/users.js';
import { createApp, type WebApp } from '../../web/app.js';
import type { JobEventHub } from '../../infra/job-event-hub.js';
import type { TestDatabase } from '../harness/db.js';
import { Browser, password } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';
import { useWebTestApp, type WebTestApp } from './web-test-app.js';

describe('web app: access and API input', () => {
  const w = useWebTestApp();
  let tdb: TestDatabase;
  let app: WebApp;
  let deps: ServiceDeps;
  let hub: JobEventHub;
  let redis: WebTestApp['redis'];
  let prefix: string;
  beforeAll(() => {
    ({ tdb, app, deps, hub, redis, prefix } = w);
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

  it('rate-limits failed logins of a user name from one address (429), also for the right password', async () => {
    await addUser(deps, { username: 'target', role: 'viewer', password });
    const b = new Browser(app);
    for (let i = 0; i < 5; i++) expect((await b.login('target', `wrong password ${i}`)).status).toBe(401);
    const blocked = await b.login('target');
    expect(blocked.status).toBe(429);
    expect(await blocked.text()).toContain('too many failed logins');
  });

  it('counts parallel login attempts before checking them: no more than the limit get a password check', async () => {
    await addUser(deps, { username: 'target2', role: 'viewer', password });
    const tries = await Promise.all(Array.from({ length: 12 }, (_, i) => new Browser(app, '198.51.100.12').login('target2', `wrong password ${i}`)));
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
});
