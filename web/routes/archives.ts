// Archive pages: /clients/:name/archives and /archives/:id (tree, search). Downloads go through
// the API route (operators), which the page links to.
import { Hono } from 'hono';
import { z } from 'zod';
import { browseArchive, findInArchive, pathArg } from '../../services/archive-browse.js';
import { listClientArchives, resolveArchive } from '../../services/archives.js';
import { principalOf, requireRole } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { archivePage, clientArchivesPage } from '../views/archives.js';

const PAGE = 200;
const pageQuery = z.object({
  path: z.string().max(65536).optional(),
  pathB64: z.string().max(90000).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  find: z.string().max(1024).optional(),
  repo: z.string().max(200).optional(),
});

export function archivesPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();

  app.get('/clients/:name/archives', requireRole('viewer'), async (c) => {
    const name = c.req.param('name');
    return c.html(clientArchivesPage(principalOf(c), name, await listClientArchives(s, name)));
  });

  app.get('/archives/:id', requireRole('viewer'), async (c) => {
    const q = pageQuery.parse(c.req.query());
    const arg = { archive: c.req.param('id'), repository: q.repo };
    if (q.find) {
      const r = await findInArchive(s, arg, q.find, 1000);
      return c.html(archivePage(principalOf(c), { archive: r.archive, search: { pattern: q.find, entries: r.entries, truncated: r.truncated }, limit: PAGE }));
    }
    // The archive first: an unknown archive is its own error, not a missing path.
    await resolveArchive(s, arg.archive, arg.repository);
    const page = await browseArchive(s, arg, pathArg(q), { offset: q.offset, limit: PAGE });
    return c.html(archivePage(principalOf(c), { archive: page.archive, page, limit: PAGE }));
  });

  return app;
}
