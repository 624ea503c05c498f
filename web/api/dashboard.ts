// /api/v1/dashboard
import { Hono } from 'hono';
import { getDashboard } from '../../services/dashboard.js';
import type { WebDeps, WebEnv } from '../env.js';
import { op } from './openapi.js';

export function dashboardApi(deps: WebDeps) {
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag: 'dashboard', summary: "The fleet at a glance: each client's last backup, failing and stale clients, running jobs with progress, repository sizes", role: 'viewer' }), async (c) =>
    c.json(await getDashboard(deps.services, new Date(), { fleet: deps.dashboardFleet })),
  );
  return app;
}
