// Policies: the list (schedule, retention, next run, last backup/prune/check), add, show/edit,
// pause/resume, back up now, prune now, check now, remove. Every action is a service call
// (services/policies.ts) — the same the CLI's `borgcube policy …` makes.
//
// Roles: viewer reads; operator triggers, pauses, resumes, prunes and checks (running what is
// configured, like starting a backup); admin adds, edits and removes (configuration).
import { Hono } from 'hono';
import type { z } from 'zod';
import { hasRole, type Principal } from '../../services/auth.js';
import { listClients } from '../../services/clients.js';
import type { ServiceError } from '../../services/errors.js';
import { addPolicy, getPolicy, getPolicyDetails, listPolicyOverviews, pausePolicy, removePolicy, resumePolicy, triggerPolicy, updatePolicy } from '../../services/policies.js';
import { setPolicyHooks } from '../../services/hooks.js';
import { startCheck, startPrune } from '../../services/policy-jobs.js';
import { parseJitter } from '../../services/policy-schedules.js';
import { type retentionSchema } from '../../services/retention.js';
import { listRepositories } from '../../services/repositories.js';
import { actor } from '../api/body.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';

type Services = WebDeps['services'];
import { formProblem, type FieldOfMessage, type FieldOfPath, type FormProblem } from '../views/form-problem.js';
import type { Html } from '../views/layout.js';
import { formValuesFrom, newPolicyPage, type PolicyChoices, policiesListPage, policyPage, retentionFields, type PolicyFormValues } from '../views/policies.js';
import { formFields, lines } from './form.js';
import { hooksFormRoute } from './hooks.js';

const seg = encodeURIComponent;

/** The form's strings as the service's input (the service validates them). */
function inputOf(v: PolicyFormValues) {
  const retention: z.input<typeof retentionSchema> = {};
  if (v.keepWithin.trim()) retention.keepWithin = v.keepWithin.trim();
  for (const [field, rule] of retentionFields) if (v[field].trim()) retention[rule] = v[field].trim();
  return {
    client: v.client,
    repository: v.repository,
    backupCrons: lines(v.backupCrons),
    timezone: v.timezone.trim() || 'UTC',
    retention,
    checkCrons: lines(v.checkCrons),
    checkVerifyData: v.checkVerifyData,
    pruneCrons: lines(v.pruneCrons),
    staleAfterHours: v.staleAfterHours.trim() || undefined,
    scheduleJitterSeconds: jitterSeconds(v.jitter),
  };
}

/** The jitter as typed; what cannot be read becomes -1, which the service refuses on the field. */
function jitterSeconds(text: string): number | null {
  try {
    return parseJitter(text);
  } catch {
    return -1;
  }
}

const listFields = new Set(['backupCrons', 'checkCrons', 'pruneCrons']);
const retentionFieldOf = new Map<PropertyKey, string>([['keepWithin', 'keepWithin'], ...retentionFields.map(([field, rule]) => [rule, field] as [string, string])]);

/** Which form field a zod issue is about. */
const fieldOfPath: FieldOfPath = (path) => {
  const [head, sub] = path;
  if (typeof head !== 'string') return undefined;
  if (listFields.has(head)) return { field: head, prefix: typeof sub === 'number' ? `line ${sub + 1}: ` : '' };
  if (head === 'scheduleJitterSeconds') return { field: 'jitter', prefix: 'a number with s, m or h (e.g. 10m), 0 for none, or empty for the default: ' };
  if (head === 'retention') return typeof sub === 'string' && retentionFieldOf.has(sub) ? { field: retentionFieldOf.get(sub)! } : { field: 'keepWithin' };
  return { field: head };
};

/** Which field a refusal after validation is about (Temporal refusing a schedule, a taken name). */
const fieldOfMessage: FieldOfMessage = (err: ServiceError) => {
  const m = /^(backup|check|prune) schedule:/.exec(err.message);
  if (m) return `${m[1]}Crons`;
  if (err.kind === 'conflict') return 'name';
  if (err.kind === 'not-found') return /^client /.test(err.message) ? 'client' : /^repository /.test(err.message) ? 'repository' : undefined;
  return undefined;
};

/** The clients and repositories a policy form offers. */
async function choices(s: Services): Promise<PolicyChoices> {
  const [clients, repos] = await Promise.all([listClients(s), listRepositories(s)]);
  return { clients: clients.map((c) => c.name), repositories: repos.map((r) => r.name) };
}

/** The add form, with the values and problem of a refused attempt. */
async function newPage(s: Services, p: Principal, values: PolicyFormValues, problem?: FormProblem): Promise<Html> {
  const ch = await choices(s);
  return newPolicyPage(p, ch, values, problem);
}

/** One policy; admins also get the edit form, with the values and problem of a refused edit. */
async function showPage(s: Services, p: Principal, name: string, o: { done?: string; values?: PolicyFormValues; problem?: FormProblem } = {}): Promise<Html> {
  const d = await getPolicyDetails(s, name);
  const admin = hasRole(p.user.role, 'admin');
  const ch = admin ? await choices(s) : undefined;
  return policyPage(p, d, ch, o);
}

export function policiesPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/', requireRole('viewer'), async (c) => {
    const p = principalOf(c);
    const filter = { client: c.req.query('client') || undefined, repository: c.req.query('repository') || undefined };
    const { policies, temporalError } = await listPolicyOverviews(s, filter);
    return c.html(policiesListPage(p, filter, policies, temporalError));
  });

  app.get('/new', requireRole('admin'), async (c) => {
    // Preselects ?client= and ?repository= (links from other pages); the rest are the defaults.
    const values = formValuesFrom({ client: c.req.query('client') ?? '', repository: c.req.query('repository') ?? '', timezone: 'UTC', staleAfterHours: '36' });
    return c.html(await newPage(s, principalOf(c), values));
  });

  app.post('/', requireRole('admin'), async (c) => {
    const f = await formFields(c);
    const values = formValuesFrom(f);
    try {
      const row = await addPolicy(s, { name: values.name, ...inputOf(values), paused: values.paused });
      return c.redirect(`/policies/${seg(row.name)}?done=added`, 303);
    } catch (err) {
      const problem = formProblem(err, fieldOfPath, fieldOfMessage);
      return c.html(await newPage(s, principalOf(c), values, problem), problem.status);
    }
  });

  app.get('/:name', requireRole('viewer'), async (c) => c.html(await showPage(s, principalOf(c), c.req.param('name'), { done: c.req.query('done') })));

  hooksFormRoute(app, '/policies', (name, hooks) => setPolicyHooks(s, name, hooks));

  app.post('/:name', requireRole('admin'), async (c) => {
    const name = c.req.param('name');
    const f = await formFields(c);
    await getPolicy(s, name); // 404 for an unknown policy, not a form error
    const values = { ...formValuesFrom(f), name };
    try {
      await updatePolicy(s, name, inputOf(values));
      return c.redirect(`/policies/${seg(name)}?done=saved`, 303);
    } catch (err) {
      const problem = formProblem(err, fieldOfPath, fieldOfMessage);
      return c.html(await showPage(s, principalOf(c), name, { values, problem }), problem.status);
    }
  });

  app.post('/:name/pause', requireRole('operator'), async (c) => {
    const row = await pausePolicy(s, c.req.param('name'));
    return c.redirect(`/policies/${seg(row.name)}?done=paused`, 303);
  });

  app.post('/:name/resume', requireRole('operator'), async (c) => {
    const row = await resumePolicy(s, c.req.param('name'));
    return c.redirect(`/policies/${seg(row.name)}?done=resumed`, 303);
  });

  app.post('/:name/trigger', requireRole('operator'), async (c) => {
    const t = await triggerPolicy(s, c.req.param('name'));
    return c.redirect(`/policies/${seg(t.policy.name)}?done=triggered`, 303);
  });

  app.post('/:name/prune', requireRole('operator'), async (c) => {
    const job = await startPrune(s, c.req.param('name'), actor(principalOf(c)));
    return c.redirect(`/jobs/${job.id}`, 303);
  });

  app.post('/:name/check', requireRole('operator'), async (c) => {
    const f = await formFields(c);
    const pol = await getPolicy(s, c.req.param('name'));
    const job = await startCheck(s, { repository: pol.repositoryName, verifyData: Boolean(f.verifyData), triggeredBy: actor(principalOf(c)) });
    return c.redirect(`/jobs/${job.id}`, 303);
  });

  app.post('/:name/delete', requireRole('admin'), async (c) => {
    await removePolicy(s, c.req.param('name'));
    return c.redirect('/policies', 303);
  });
  return app;
}
