// Clients: list, add, show/edit, test the connection, remove.
import { Hono } from 'hono';
import type { Principal } from '../../services/auth.js';
import { addClient, borgDeploySchema, getClient, listClientsInput, listClientsPage, removeClient, testClient, updateClient, type ClientTestResult } from '../../services/clients.js';
import { setClientHooks } from '../../services/hooks.js';
import { listJobs } from '../../services/jobs.js';
import { listRepositories } from '../../services/repositories.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { CLIENT_PAGE_ROWS, clientPage, clientsListPage, newClientPage } from '../views/clients.js';
import type { Html } from '../views/layout.js';
import { formFields, lines } from './form.js';
import { hooksFormRoute } from './hooks.js';

export function clientsPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/', requireRole('viewer'), async (c) => {
    const p = principalOf(c);
    // A page at a time (100 by default): 10,000 clients made a 2 MB page that took a second to render.
    const raw = Object.fromEntries(Object.entries(c.req.query()).filter(([, v]) => v !== ''));
    const q = listClientsInput.parse({ limit: CLIENT_PAGE_ROWS, ...raw });
    return c.html(clientsListPage(p, q, await listClientsPage(s, q)));
  });

  app.get('/new', requireRole('admin'), (c) => {
    const p = principalOf(c);
    return c.html(newClientPage(p));
  });

  app.post('/', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const row = await addClient(s, {
      name: f.name ?? '',
      host: f.host ?? '',
      port: f.port || undefined,
      user: f.user || undefined,
      paths: lines(f.paths),
      excludes: lines(f.excludes),
      borgPath: f.borgPath || undefined,
      borgDeploy: borgDeploySchema.optional().parse(f.borgDeploy || undefined),
      dedupScope: f.dedupScope === 'repository' ? 'repository' : 'client',
    });
    return c.redirect(`/clients/${encodeURIComponent(row.name)}`, 303);
  });

  const showPage = async (p: Principal, name: string, test?: ClientTestResult): Promise<Html> => {
    const cl = await getClient(s, name);
    const [jobs, repos] = await Promise.all([listJobs(s, { client: cl.name, limit: 10 }), listRepositories(s)]);
    return clientPage(p, cl, jobs.jobs, repos, test);
  };

  app.get('/:name', requireRole('viewer'), async (c) => c.html(await showPage(principalOf(c), c.req.param('name'))));

  app.post('/:name', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const row = await updateClient(s, c.req.param('name'), {
      host: f.host,
      port: f.port,
      user: f.user,
      paths: lines(f.paths),
      excludes: lines(f.excludes),
      borgPath: f.borgPath,
      borgDeploy: borgDeploySchema.optional().parse(f.borgDeploy || undefined),
      dedupScope: f.dedupScope === 'repository' ? 'repository' : 'client',
    });
    return c.redirect(`/clients/${encodeURIComponent(row.name)}`, 303);
  });

  hooksFormRoute(app, '/clients', (name, hooks) => setClientHooks(s, name, hooks));

  app.post('/:name/test', requireRole('operator'), async (c) => {
    const result = await testClient(s, c.req.param('name'), { signal: AbortSignal.timeout(60_000) });
    return c.html(await showPage(principalOf(c), c.req.param('name'), result));
  });

  app.post('/:name/delete', requireRole('admin'), async (c) => {
    await removeClient(s, c.req.param('name'));
    return c.redirect('/clients', 303);
  });
  return app;
}
