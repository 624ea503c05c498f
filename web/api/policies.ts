// /api/v1/policies — the same service calls as the console's pages and `borgcube policy …`.
// Roles: viewer reads; operator triggers, pauses, resumes, prunes and checks; admin adds, edits
// and removes.
import { Hono } from 'hono';
import { z } from 'zod';
import { addPolicy, addPolicyInput, getPolicy, getPolicyDetails, listPolicyOverviews, pausePolicy, removePolicy, resumePolicy, triggerPolicy, updatePolicy, updatePolicyInput } from '../../services/policies.js';
import { startCheck, startPrune } from '../../services/policy-jobs.js';
import { principalOf } from '../auth.js';
import { hookSetSchema, setPolicyHooks } from '../../services/hooks.js';
import type { WebDeps, WebEnv } from '../env.js';
import { actor, jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'policies';
const nameParam = z.object({ name: z.string().describe('policy name') });
export const listPoliciesQuery = z.object({
  client: z.string().min(1).optional().describe('only the policies of this client'),
  repository: z.string().min(1).optional().describe('only the policies of this repository'),
});
/** `?verifyData=true|false` of a check started now (default: the policy's setting, or false). */
export const checkNowQuery = z.object({
  verifyData: z.enum(['true', 'false']).optional().describe('read and verify every chunk (borg check --verify-data)'),
});

export function policiesApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get(
    '/',
    op({ tag, summary: "List policies with their backup schedule's next run and state, and the last backup, prune and check; `temporalError` is set when Temporal did not answer", role: 'viewer', query: listPoliciesQuery }),
    async (c) => c.json(await listPolicyOverviews(s, listPoliciesQuery.parse(c.req.query()))),
  );
  app.post('/', op({ tag, summary: 'Add a policy and create its Temporal Schedules (a schedule Temporal refuses undoes it: 400)', role: 'admin', body: addPolicyInput, status: 201 }), async (c) => {
    const input = addPolicyInput.parse(await jsonBody(c));
    return c.json(await addPolicy(s, input), 201);
  });
  app.get('/:name', op({ tag, summary: 'A policy with its Temporal Schedules (next runs, recent runs, skipped overlaps) and its last backup, prune and check', role: 'viewer', params: nameParam }), async (c) =>
    c.json(await getPolicyDetails(s, c.req.param('name'))),
  );
  app.patch(
    '/:name',
    op({ tag, summary: 'Change a policy (fields not sent stay; `retention` replaces the rules as a whole); its Temporal Schedules follow', role: 'admin', params: nameParam, body: updatePolicyInput }),
    async (c) => {
      const input = updatePolicyInput.parse(await jsonBody(c));
      return c.json(await updatePolicy(s, c.req.param('name'), input));
    },
  );
  app.delete('/:name', op({ tag, summary: 'Remove a policy and its schedules (running jobs finish; archives stay)', role: 'admin', params: nameParam, status: 204 }), async (c) => {
    await removePolicy(s, c.req.param('name'));
    return c.body(null, 204);
  });
  app.post('/:name/pause', op({ tag, summary: "Pause the policy's schedules (trigger still works)", role: 'operator', params: nameParam }), async (c) => c.json(await pausePolicy(s, c.req.param('name'))));
  app.post('/:name/resume', op({ tag, summary: "Resume the policy's schedules", role: 'operator', params: nameParam }), async (c) => c.json(await resumePolicy(s, c.req.param('name'))));
  app.post(
    '/:name/trigger',
    op({ tag, summary: 'Run the backup schedule now (backup, then prune); skipped while a run of this schedule or a backup of the client is going', role: 'operator', params: nameParam, status: 202 }),
    async (c) => {
      const t = await triggerPolicy(s, c.req.param('name'));
      return c.json({ scheduleId: t.scheduleId, triggeredAt: t.at, policy: t.policy }, 202);
    },
  );
  app.post('/:name/prune', op({ tag, summary: "Prune the policy's client now with its retention rules, then compact (a prune job)", role: 'operator', params: nameParam, status: 201 }), async (c) =>
    c.json(await startPrune(s, c.req.param('name'), actor(principalOf(c))), 201),
  );
  app.post(
    '/:name/check',
    op({ tag, summary: "borg check of the policy's repository now (a check job)", role: 'operator', params: nameParam, query: checkNowQuery, status: 201 }),
    async (c) => {
      const q = checkNowQuery.parse(c.req.query());
      const p = await getPolicy(s, c.req.param('name'));
      const verifyData = q.verifyData === undefined ? p.checkVerifyData : q.verifyData === 'true';
      return c.json(await startCheck(s, { repository: p.repositoryName, verifyData, triggeredBy: actor(principalOf(c)) }), 201);
    },
  );
  app.get('/:name/hooks', op({ tag, summary: "Show a policy's hooks (run in addition to its client's)", role: 'viewer', params: nameParam }), async (c) =>
    c.json({ hooks: (await getPolicy(s, c.req.param('name'))).hooks }),
  );
  app.put(
    '/:name/hooks',
    op({ tag, summary: "Replace a policy's hooks: before, onFailure, after; each { command, timeoutSeconds? }", role: 'admin', params: nameParam, body: hookSetSchema }),
    async (c) => c.json({ hooks: await setPolicyHooks(s, c.req.param('name'), hookSetSchema.parse(await jsonBody(c))) }),
  );
  return app;
}
