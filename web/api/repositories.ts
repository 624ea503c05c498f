// /api/v1/repositories
import { Hono } from 'hono';
import { z } from 'zod';
import { listArchives, listArchivesLive } from '../../services/archives.js';
import { addRepository, addRepositoryInput, getRepository, listRepositories } from '../../services/repositories.js';
import type { WebDeps, WebEnv } from '../env.js';
import { jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'repositories';
const nameParam = z.object({ name: z.string().describe('repository name') });

export function repositoriesApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'List repositories with their last recorded statistics', role: 'viewer' }), async (c) => c.json({ repositories: await listRepositories(s) }));
  app.post('/', op({ tag, summary: 'Create a repository on this storage host (borg init); storageHost, if given, must be this one: another host creates its own', role: 'admin', body: addRepositoryInput, status: 201 }), async (c) => {
    const input = addRepositoryInput.parse(await jsonBody(c));
    return c.json(await addRepository(s, input), 201);
  });
  app.get('/:name', op({ tag, summary: 'Show a repository', role: 'viewer', params: nameParam }), async (c) => c.json(await getRepository(s, c.req.param('name'))));
  app.get('/:name/archives', op({ tag, summary: 'Archives BorgCube recorded in the repository', role: 'viewer', params: nameParam }), async (c) =>
    c.json({ archives: await listArchives(s, c.req.param('name')) }),
  );
  // A POST: it takes the repository's lease (running borg with the real key), so it must not be
  // something a cross-site GET can start (POST needs the CSRF token with a session cookie).
  app.post(
    '/:name/archives/live',
    op({ tag, summary: 'Read the archives as the repository lists them now (borg list with the real key; waits for running backups to release the repository, which waits meanwhile)', role: 'operator', params: nameParam }),
    async (c) => c.json({ archives: await listArchivesLive(s, c.req.param('name'), { signal: c.req.raw.signal }) }),
  );
  return app;
}
