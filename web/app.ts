// The web console and JSON API as one Hono app. `createApp(deps)` has no side effects: tests call
// `app.request()` on it; web/main.ts serves it and calls `app.injectWebSocket(server)`.
//
// Order of the middleware: security headers on everything; health and static files answer
// without touching the session; then authentication (finds the principal), the body limit (small
// until logged in), CSRF (refuses cookie-authenticated writes without the token); then one sub-app
// per resource, each route checking its role (pages: requireRole, API: op()).
import { createNodeWebSocket } from '@hono/node-ws';
import { Hono } from 'hono';
import { html } from 'hono/html';
import type { Server } from 'node:http';
import type { Http2SecureServer, Http2Server } from 'node:http2';
import { alertsApi } from './api/alerts.js';
import { repositoryChecksApi } from './api/checks.js';
import { clientsApi } from './api/clients.js';
import { dashboardApi } from './api/dashboard.js';
import { jobsApi } from './api/jobs.js';
import { restoresApi } from './api/restores.js';
import { openApiDocument } from './api/openapi.js';
import { policiesApi } from './api/policies.js';
import { repositoriesApi } from './api/repositories.js';
import { storageHostsApi } from './api/storage-hosts.js';
import { sessionApi, tokensApi, usersApi } from './api/users.js';
import { authenticate, csrfProtection } from './auth.js';
import { requestBodyLimit } from './body-limit.js';
import type { WebDeps, WebEnv } from './env.js';
import { createErrorHandler, wantsJson } from './errors.js';
import { alertsPages } from './routes/alerts.js';
import { authPages } from './routes/auth.js';
import { clientsPages } from './routes/clients.js';
import { dashboardPages } from './routes/dashboard.js';
import { jobsPages } from './routes/jobs.js';
import { policiesPages } from './routes/policies.js';
import { repositoriesPages } from './routes/repositories.js';
import { socketRoutes } from './routes/sockets.js';
import { accountPages, usersPages } from './routes/users.js';
import { securityHeaders } from './security.js';
import { staticFiles } from './static.js';
import { createMetricsApp } from './metrics.js';
import { healthApi } from './api/health.js';
import { healthSummary } from './health.js';
import { archivesApi } from './api/archives.js';
import { archivesPages } from './routes/archives.js';
import { layout } from './views/layout.js';

export const apiPrefix = '/api/v1';

export function createApp(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  const nodeWs = createNodeWebSocket({ app });
  // Browsers send nothing on these sockets; ws would otherwise accept 100 MiB messages.
  nodeWs.wss.options.maxPayload = 64 * 1024;

  app.onError(createErrorHandler(s.log));
  app.notFound((c) =>
    wantsJson(c)
      ? c.json({ error: { kind: 'not-found', message: `no route for ${c.req.method} ${c.req.path}` } }, 404)
      : c.html(layout({ title: 'Not found', principal: c.get('principal'), body: html`<h1>Not found</h1><p>There is no page at this address. <a href="/">Dashboard</a></p>` }), 404),
  );
  app.use('*', securityHeaders({ https: s.config.web.publicUrl.startsWith('https:') }));

  // Anyone may ask; the answer says only ok or degraded per component (the error texts, task
  // queue and storage host names are at /api/v1/health, for logged-in users).
  app.get('/healthz', async (c) => {
    const report = await deps.health();
    return c.json(healthSummary(report), report.ok ? 200 : 503);
  });
  app.route('/static', staticFiles());
  app.route('/metrics', createMetricsApp(s)); // Prometheus; bearer token or loopback (web/metrics.ts)

  app.use('*', authenticate(s));
  // One structured line per request (no query strings, bodies or headers: they may hold secrets).
  app.use('*', async (c, next) => {
    const t = performance.now();
    await next();
    const line = { method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - t), user: c.get('principal')?.user.username };
    if (c.req.method === 'GET') s.log.debug(line, 'request');
    else s.log.info(line, 'request');
  });
  app.use('*', requestBodyLimit()); // before anything reads a body (CSRF parses forms)
  app.use('*', csrfProtection());

  // Pages
  app.route('/', authPages(deps));
  app.route('/', dashboardPages(deps));
  app.route('/', archivesPages(deps));
  app.route('/clients', clientsPages(deps));
  app.route('/repositories', repositoriesPages(deps));
  app.route('/jobs', jobsPages(deps));
  app.route('/policies', policiesPages(deps));
  app.route('/alerts', alertsPages(deps));
  app.route('/users', usersPages(deps));
  app.route('/account', accountPages(deps));

  // JSON API
  app.route(`${apiPrefix}/session`, sessionApi());
  app.route(`${apiPrefix}/dashboard`, dashboardApi(deps));
  app.route(`${apiPrefix}/clients`, clientsApi(deps));
  app.route(apiPrefix, archivesApi(deps));
  app.route(`${apiPrefix}/repositories`, repositoriesApi(deps));
  app.route(`${apiPrefix}/repositories`, repositoryChecksApi(deps)).route(`${apiPrefix}/storage-hosts`, storageHostsApi(deps));
  app.route(`${apiPrefix}/jobs`, jobsApi(deps));
  app.route(`${apiPrefix}/restores`, restoresApi(deps));
  app.route(`${apiPrefix}/policies`, policiesApi(deps));
  app.route(`${apiPrefix}/alerts`, alertsApi(deps));
  app.route(`${apiPrefix}/users`, usersApi(deps));
  app.route(`${apiPrefix}/tokens`, tokensApi(deps));
  app.route(`${apiPrefix}/health`, healthApi(deps));
  let openapi: ReturnType<typeof openApiDocument> | undefined;
  app.get(`${apiPrefix}/openapi.json`, (c) => {
    openapi ??= openApiDocument(app, apiPrefix, { title: 'BorgCube', version: '1', serverUrl: `${s.config.web.publicUrl}${apiPrefix}` });
    return c.json(openapi);
  });

  // Live updates
  app.route('/ws', socketRoutes(deps, nodeWs.upgradeWebSocket));

  return Object.assign(app, {
    /** Routes WebSocket upgrades of the Node server through this app (web/main.ts). */
    injectWebSocket: (server: Server | Http2Server | Http2SecureServer) => nodeWs.injectWebSocket(server),
    /** Closes every open WebSocket (1001 "going away"); browsers reconnect to the next process. */
    closeWebSockets: () => {
      for (const ws of nodeWs.wss.clients) ws.close(1001, 'server stopping');
    },
  });
}

export type WebApp = ReturnType<typeof createApp>;
