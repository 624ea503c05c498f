// The web app's pages and API against a real PostgreSQL and Redis: escaping
// of what clients control, job listing, the OpenAPI document and the dashboard.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import * as jobsQ from '../../db/queries/jobs.js';
import { addClient } from '../../services/clients.js';
import type { ServiceDeps } from '../../services/deps.js';
import type { WebApp } from '../../web/app.js';
import { operationOf } from '../../web/api/openapi.js';
import { Browser } from './web-browser.js';
import { insertRepositoryRow } from './web-fixtures.js';
import { useWebTestApp } from './web-test-app.js';

describe('web app', () => {
  const w = useWebTestApp();
  let app: WebApp;
  let deps: ServiceDeps;
  beforeAll(() => {
    ({ app, deps } = w);
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
});
