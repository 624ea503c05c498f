// /api/v1/jobs
import { Hono } from 'hono';
import { z } from 'zod';
import { progressEstimate } from '../../services/dashboard.js';
import { cancelJob, getJob, getJobDetails, jobLogAfter, jobLogTail, listJobs, listJobsInput, startBackup, startBackupInput } from '../../services/jobs.js';
import { principalOf } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { actor, jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'jobs';
const idParam = z.object({ id: z.string().uuid().describe('job id (= Temporal workflow id)') });
export const startJobInput = startBackupInput.pick({ client: true, repository: true });
export const logsQuery = z.object({
  after: z.coerce.number().int().min(0).optional().describe('only lines with a larger seq (resume)'),
  tail: z.coerce.number().int().min(1).max(5000).default(200).describe('without `after`: the last N lines'),
  limit: z.coerce.number().int().min(1).max(5000).default(1000).describe('with `after`: at most N lines'),
});

export function jobsApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'List jobs, newest first; pass `nextCursor` as `cursor` for the next page', role: 'viewer', query: listJobsInput }), async (c) =>
    c.json(await listJobs(s, listJobsInput.parse(c.req.query()))),
  );
  app.post('/', op({ tag, summary: 'Start a backup of a client into a repository now', role: 'operator', body: startJobInput, status: 201 }), async (c) => {
    const input = startJobInput.parse(await jsonBody(c));
    return c.json(await startBackup(s, { ...input, triggeredBy: actor(principalOf(c)) }), 201);
  });
  app.get('/:id', op({ tag, summary: 'A job with its violations, live phase and progress', role: 'viewer', params: idParam }), async (c) => {
    const d = await getJobDetails(s, c.req.param('id'));
    return c.json({ ...d, estimate: await progressEstimate(s, d.clientId) });
  });
  app.get('/:id/logs', op({ tag, summary: "A job's stored log lines", role: 'viewer', params: idParam, query: logsQuery }), async (c) => {
    const q = logsQuery.parse(c.req.query());
    const id = c.req.param('id');
    await getJob(s, id);
    const lines = q.after !== undefined ? await jobLogAfter(s, id, q.after, q.limit) : await jobLogTail(s, id, q.tail);
    return c.json({ lines });
  });
  app.post('/:id/cancel', op({ tag, summary: 'Cancel a running job (cleanup still runs)', role: 'operator', params: idParam, status: 202 }), async (c) => {
    const outcome = await cancelJob(s, c.req.param('id'));
    // 'ended': the job had no running workflow any more; its row was ended at once.
    return c.json({ cancelRequested: outcome === 'requested', ended: outcome === 'ended' }, 202);
  });

  return app;
}
