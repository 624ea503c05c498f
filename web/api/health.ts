// /api/v1/health: the full health report (error texts, each task queue and whether a worker
// polls it) for logged-in users; the anonymous /healthz says only ok or degraded.
import { Hono } from 'hono';
import type { WebDeps, WebEnv } from '../env.js';
import { op } from './openapi.js';

export function healthApi(deps: WebDeps) {
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag: 'health', summary: 'PostgreSQL, Redis, Temporal and the workers of each task queue, with the errors seen (503 without the database)', role: 'viewer' }), async (c) => {
    const report = await deps.health();
    return c.json(report, report.ok ? 200 : 503);
  });
  return app;
}
