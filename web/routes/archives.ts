// Archive pages: /clients/:name/archives and /archives/:id (tree, search), and the tree's form of
// picked paths: download them (a redirect to the API's tar route, operators) or restore them onto
// a client (operators and admins; services/restores.ts decides what may be restored by whom).
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { browseArchive, findInArchive, pathArg } from '../../services/archive-browse.js';
import { listClientArchives, resolveArchive } from '../../services/archives.js';
import { hasRole } from '../../services/auth.js';
import { listClients } from '../../services/clients.js';
import { ServiceError, invalid } from '../../services/errors.js';
import { startRestore } from '../../services/restores.js';
import { actor } from '../api/body.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { archivePage, clientArchivesPage } from '../views/archives.js';
import { formProblem, type FieldOfMessage, type FormProblem } from '../views/form-problem.js';
import { emptyRestoreForm, pickKey, type RestoreFormValues } from '../views/restore-form.js';

const PAGE = 200;
const pageQuery = z.object({
  path: z.string().max(65536).optional(),
  pathB64: z.string().max(90000).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  find: z.string().max(1024).optional(),
  repo: z.string().max(200).optional(),
});
type Services = WebDeps['services'];
type Body = Record<string, string | File | Array<string | File>>;

/** A form field's values as strings (files are refused). */
function all(body: Body, name: string): string[] {
  const v = body[name];
  const list = v === undefined ? [] : Array.isArray(v) ? v : [v];
  return list.map((x) => {
    if (typeof x !== 'string') throw invalid(`${name}: files are not accepted here`);
    return x;
  });
}
const one = (body: Body, name: string) => all(body, name).at(-1) ?? '';

function restoreValues(body: Body): RestoreFormValues {
  return {
    client: one(body, 'client'),
    target: one(body, 'target'),
    inPlace: one(body, 'inPlace') !== '',
    stripComponents: one(body, 'stripComponents'),
    picked: new Set([...all(body, 'path').map((v) => pickKey('path', v)), ...all(body, 'pathB64').map((v) => pickKey('pathB64', v))]),
  };
}

/** The picked paths as text: borg extract takes its patterns as text, so a name that is not UTF-8 is picked through its folder. */
function restorePaths(body: Body): string[] {
  const b64 = all(body, 'pathB64').map((v) => {
    const p = pathArg({ pathB64: v });
    const text = p.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(p)) throw invalid(`paths: ${JSON.stringify(text)} is not UTF-8 text; pick its folder to restore it`);
    return text;
  });
  return [...all(body, 'path'), ...b64];
}

function stripOf(v: string): number {
  if (!v.trim()) return 0;
  if (!/^\d{1,3}$/.test(v.trim())) throw invalid('stripComponents: give a whole number from 0 to 255');
  return Number(v.trim());
}

const restoreFields = new Set(['client', 'target', 'inPlace', 'stripComponents', 'paths']);
/** The field a refusal names ("target: must be an absolute path"), or by what it is about. */
const fieldOfMessage: FieldOfMessage = (err) => {
  const head = /^(\w+)[.:]/.exec(err.message)?.[1];
  if (head && restoreFields.has(head)) return head;
  if (/^client "|^client .* does not exist/.test(err.message)) return 'client';
  if (/^a restore into /.test(err.message)) return 'target';
  return undefined;
};

/** A refused restore as the form's problem; the dedup-scope refusal (forbidden) is one too. */
function restoreProblem(err: unknown): FormProblem {
  if (err instanceof ServiceError && err.kind === 'forbidden') return { status: 403, message: err.message, byField: {}, general: [err.message] };
  return formProblem(err, (path) => (typeof path[0] === 'string' && restoreFields.has(path[0]) ? { field: path[0] } : undefined), fieldOfMessage);
}

export function archivesPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/clients/:name/archives', requireRole('viewer'), async (c) => {
    const name = c.req.param('name');
    return c.html(clientArchivesPage(principalOf(c), name, await listClientArchives(s, name)));
  });

  app.get('/archives/:id', requireRole('viewer'), async (c) => c.html(await renderArchive(s, c, c.req.query())));

  /** The tree's "download picked" buttons: the API's tar route, with the picked paths. */
  app.post('/archives/:id/download', requireRole('operator'), async (c) => {
    const body = await c.req.parseBody({ all: true });
    const q = [...all(body, 'path').map((v) => `path=${encodeURIComponent(v)}`), ...all(body, 'pathB64').map((v) => `pathB64=${encodeURIComponent(v)}`)];
    if (one(body, 'gzip') === '1') q.push('gzip=1');
    return c.redirect(`/api/v1/archives/${encodeURIComponent(c.req.param('id'))}/download${q.length ? `?${q.join('&')}` : ''}`, 303);
  });

  app.post('/archives/:id/restore', requireRole('operator'), async (c) => {
    const p = principalOf(c);
    const body = await c.req.parseBody({ all: true });
    const values = restoreValues(body);
    try {
      const job = await startRestore(
        s,
        { actor: actor(p), userId: p.user.id, role: p.user.role },
        {
          archive: c.req.param('id'),
          client: values.client || undefined,
          target: values.target.trim() || undefined,
          inPlace: values.inPlace,
          paths: restorePaths(body),
          stripComponents: stripOf(values.stripComponents),
        },
      );
      return c.redirect(`/jobs/${job.id}`, 303);
    } catch (err) {
      const problem = restoreProblem(err);
      const view = Object.fromEntries(new URLSearchParams(one(body, 'view')));
      return c.html(await renderArchive(s, c, view, { values, problem }), problem.status);
    }
  });

  return app;
}

/** An archive's page (directory or search) for `query`, with the restore form for operators. */
async function renderArchive(s: Services, c: Context<WebEnv>, query: Record<string, string>, restore?: { values: RestoreFormValues; problem: FormProblem }) {
  const p = principalOf(c);
  const q = pageQuery.parse(query);
  const arg = { archive: c.req.param('id')!, repository: q.repo };
  // The archive first: an unknown archive is its own error, not a missing path.
  const archive = await resolveArchive(s, arg.archive, arg.repository);
  const form = hasRole(p.user.role, 'operator') ? { clients: (await listClients(s)).map((x) => x.name), ...(restore ?? { values: emptyRestoreForm(archive.clientName) }) } : undefined;
  if (q.find) {
    const r = await findInArchive(s, arg, q.find, 1000);
    return archivePage(p, { archive: r.archive, search: { pattern: q.find, entries: r.entries, truncated: r.truncated }, limit: PAGE, restore: form });
  }
  const page = await browseArchive(s, arg, pathArg(q), { offset: q.offset, limit: PAGE });
  return archivePage(p, { archive: page.archive, page, limit: PAGE, restore: form });
}
