// /api/v1/repositories/:name/checks and /check — a repository's `borg check` results and a check
// started now (services/policy-jobs.ts). Mounted next to ./repositories.ts under the same prefix.
import { Hono } from 'hono';
import { z } from 'zod';
import { listRepositoryChecks } from '../../services/policies.js';
import { startCheck } from '../../services/policy-jobs.js';
import { principalOf } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { actor } from './body.js';
import { op } from './openapi.js';
import { checkNowQuery } from './policies.js';

const tag = 'repositories';
const nameParam = z.object({ name: z.string().describe('repository name') });
const checksQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(20).describe('the newest N results') });

export function repositoryChecksApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/:name/checks', op({ tag, summary: "The repository's check results, newest first (ok or failed, verify-data, duration, borg's problems)", role: 'viewer', params: nameParam, query: checksQuery }), async (c) =>
    c.json({ checks: await listRepositoryChecks(s, c.req.param('name'), checksQuery.parse(c.req.query()).limit) }),
  );
  app.post('/:name/check', op({ tag, summary: 'borg check of the repository now (a check job)', role: 'operator', params: nameParam, query: checkNowQuery, status: 201 }), async (c) => {
    const q = checkNowQuery.parse(c.req.query());
    return c.json(await startCheck(s, { repository: c.req.param('name'), verifyData: q.verifyData === 'true', triggeredBy: actor(principalOf(c)) }), 201);
  });
  return app;
}
