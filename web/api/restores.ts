// /api/v1/restores: start a restore job (operators and admins; an archive that may reference other
// tenants' data only by an admin — services/restores.ts). The job is then a job like any other
// under /api/v1/jobs.
import { Hono } from 'hono';
import { startRestore, startRestoreInput } from '../../services/restores.js';
import { principalOf } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { actor, jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'restores';

export function restoresApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.post(
    '/',
    op({
      tag,
      summary: 'Restore an archive (all of it or some paths) onto a client, into a new directory by default',
      description:
        "`client` defaults to the archive's own client and `target` to `/var/tmp/borgcube-restore-<job id>`; `inPlace: true` restores to the original paths and excludes `target`. Returns the job; follow it under /jobs/{id}.",
      role: 'operator',
      body: startRestoreInput,
      status: 201,
    }),
    async (c) => {
      const p = principalOf(c);
      const input = startRestoreInput.parse(await jsonBody(c));
      const job = await startRestore(s, { actor: actor(p), userId: p.user.id, role: p.user.role }, input);
      return c.json(job, 201);
    },
  );
  return app;
}
