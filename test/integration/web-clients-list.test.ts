// The clients list at fleet scale (issue 23): a page at a time by name, with a name search, in
// the console and the API; the API's answer without limit/cursor stays the whole list.
import { beforeAll, describe, expect, it } from 'vitest';
import { addClient } from '../../services/clients.js';
import type { ServiceDeps } from '../../services/deps.js';
import type { WebApp } from '../../web/app.js';
import { Browser } from './web-browser.js';
import { useWebTestApp } from './web-test-app.js';

interface ClientPage {
  clients: Array<{ name: string }>;
  nextCursor: string | null;
  total: number;
}

describe('clients list', () => {
  const w = useWebTestApp();
  let app: WebApp;
  let deps: ServiceDeps;
  const names = [...Array.from({ length: 7 }, (_, i) => `web-${String(i).padStart(2, '0')}`), 'db_1', 'db-1', 'mail-01'];
  beforeAll(async () => {
    ({ app, deps } = w);
    for (const name of names) await addClient(deps, { name, host: '10.0.0.1', paths: ['/srv'] });
  });

  it('pages through the API by name with nextCursor, and answers the whole list without limit or cursor', async () => {
    const b = new Browser(app);
    await b.login('viewer');
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const res = await b.api('GET', `/api/v1/clients?limit=4${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as ClientPage;
      expect(page.clients.length).toBeLessThanOrEqual(4);
      expect(page.total).toBe(names.length);
      seen.push(...page.clients.map((c) => c.name));
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    const all = (await (await b.api('GET', '/api/v1/clients')).json()) as ClientPage;
    expect(all.nextCursor).toBeNull();
    expect(all.clients.map((c) => c.name)).toEqual(seen);
    expect([...seen].sort()).toEqual([...names].sort());
    expect((await b.api('GET', '/api/v1/clients?limit=501')).status).toBe(400);
  });

  it('searches names case-insensitively, with % and _ as plain characters', async () => {
    const b = new Browser(app);
    await b.login('viewer');
    const search = async (q: string) => ((await (await b.api('GET', `/api/v1/clients?search=${encodeURIComponent(q)}`)).json()) as ClientPage).clients.map((c) => c.name);
    expect(await search('WEB-0')).toHaveLength(7);
    expect(await search('db_')).toEqual(['db_1']);
    expect(await search('%')).toEqual([]);
  });

  it('shows a page of clients in the console with a link to the next one and a search form', async () => {
    const b = new Browser(app);
    await b.login('viewer');
    const first = await (await b.get('/clients?limit=5')).text();
    expect(first).toContain('id="client-search"');
    expect(first).toContain(`${names.length} clients; 5 on this page`);
    const next = /id="next-page" href="([^"]+)"/.exec(first)?.[1]?.replace(/&amp;/g, '&');
    expect(next).toBeDefined();
    const second = await (await b.get(next!)).text();
    expect(second).toContain('First page');
    const found = await (await b.get('/clients?search=mail')).text();
    expect(found).toContain('mail-01');
    expect(found).not.toContain('web-00');
  });
});
