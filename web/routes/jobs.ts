// Jobs: the filterable list, starting a backup, the live job page, cancelling.
import { Hono } from 'hono';
import { listClientNames } from '../../services/clients.js';
import { withLiveProgress } from '../../services/dashboard.js';
import { cancelJob, getJobDetails, jobLogTail, listJobs, listJobsInput, startBackup } from '../../services/jobs.js';
import { listRepositories } from '../../services/repositories.js';
import { actor } from '../api/body.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { CLIENT_SELECT_MAX, jobPage, jobsListPage } from '../views/jobs.js';
import { formFields } from './form.js';

export function jobsPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/', requireRole('viewer'), async (c) => {
    const p = principalOf(c);
    const raw = c.req.query();
    // Empty filter fields of the GET form mean "any".
    const q = listJobsInput.parse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== '')));
    // One name more than a drop-down holds tells the page to offer a text field instead.
    const [page, clients, repos] = await Promise.all([listJobs(s, q), listClientNames(s, CLIENT_SELECT_MAX + 1), listRepositories(s)]);
    return c.html(jobsListPage(p, q, page, clients, repos.map((x) => x.name)));
  });

  app.post('/', requireRole('operator'), async (c) => {
    const f = await formFields(c);
    const job = await startBackup(s, { client: f.client ?? '', repository: f.repository ?? '', triggeredBy: actor(principalOf(c)) });
    return c.redirect(`/jobs/${job.id}`, 303);
  });

  app.get('/:id', requireRole('viewer'), async (c) => {
    const p = principalOf(c);
    const d = await getJobDetails(s, c.req.param('id'));
    const live = await withLiveProgress(s, d);
    const lines = await jobLogTail(s, d.id, 500);
    return c.html(jobPage(p, d, live, lines));
  });

  app.post('/:id/cancel', requireRole('operator'), async (c) => {
    await cancelJob(s, c.req.param('id'));
    return c.redirect(`/jobs/${c.req.param('id')}`, 303);
  });
  return app;
}
