import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../infra/logger.js';
import type { WebEnv } from './env.js';
import { createErrorHandler, databaseDown } from './errors.js';

// What node-postgres and drizzle throw while PostgreSQL is stopped or restarting (seen in the
// fault suite, issue 22): the console answered those with a bare 500, as if it were a bug.
const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
const wrapped = new Error('Failed query: select …', { cause: refused });
const shuttingDown = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
const terminated = new Error('Connection terminated unexpectedly');

describe('errors while the database is down', () => {
  it('are recognised through drizzle\'s wrapping and AggregateError', () => {
    for (const e of [refused, wrapped, shuttingDown, terminated, new AggregateError([refused], '')]) expect(databaseDown(e)).toBe(true);
    expect(databaseDown(new Error('relation "jobs" does not exist'))).toBe(false);
    expect(databaseDown(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
  });

  it('are answered 503 "unavailable" on the API and on pages, other errors stay 500', async () => {
    const app = new Hono<WebEnv>();
    app.onError(createErrorHandler(createLogger({ name: 'test', level: 'silent' })));
    app.get('/api/v1/jobs', () => Promise.reject(wrapped));
    app.get('/jobs', () => Promise.reject(shuttingDown));
    app.get('/api/v1/bug', () => Promise.reject(new Error('bug')));
    const api = await app.request('/api/v1/jobs');
    expect(api.status).toBe(503);
    expect(await api.json()).toEqual({ error: { kind: 'unavailable', message: 'the database is not reachable; try again shortly' } });
    const page = await app.request('/jobs');
    expect(page.status).toBe(503);
    expect(await page.text()).toMatch(/the database is not reachable/);
    expect((await app.request('/api/v1/bug')).status).toBe(500);
  });
});
