// /api/v1/clients/{name}/archives and /api/v1/archives/{id}/…: a client's archives, an archive's
// tree and search (every role), and downloads as tar or tar.gz (operators and admins).
import { Readable } from 'node:stream';
import { Hono } from 'hono';
import { z } from 'zod';
import { browseArchive, downloadArchive, entryJson, findInArchive, pathArg, statArchivePath } from '../../services/archive-browse.js';
import { listClientArchives, resolveArchive } from '../../services/archives.js';
import { principalOf } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { op } from './openapi.js';

const tag = 'archives';
const idParam = z.object({ id: z.string().min(1).max(300).describe('archive id (uuid) or name') });
const nameParam = z.object({ name: z.string().describe('client name') });
const repoQuery = z.object({ repo: z.string().max(200).optional().describe('repository name, when archives of that name exist in several') });
const pathFields = {
  path: z.string().max(65536).optional().describe('path in the archive (UTF-8 text); the top level when left out'),
  pathB64: z.string().max(90000).optional().describe('the path as base64 of its bytes, for names that are not UTF-8'),
};
export const treeQuery = repoQuery.extend({
  ...pathFields,
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(200),
});
export const findQuery = repoQuery.extend({
  pattern: z.string().min(1).max(1024).describe('glob (*, ? within a name, ** across directories) or substring'),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});
export const downloadQuery = repoQuery.extend({
  path: z.string().max(65536).optional().describe('a path to include (repeat for several); everything when none is given'),
  pathB64: z.string().max(90000).optional().describe('a path as base64 of its bytes (repeatable)'),
  gzip: z.enum(['0', '1', 'true', 'false']).optional().describe('1: tar.gz (no Content-Length); default plain tar with its exact Content-Length'),
});

/** Content-Disposition with an ASCII name (the services make it safe) and its RFC 5987 twin. */
const disposition = (name: string) => `attachment; filename="${name}"; filename*=UTF-8''${encodeURIComponent(name)}`;

export function archivesApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.get('/clients/:name/archives', op({ tag, summary: "A client's archives, newest first (time, sizes, files, job, policy)", role: 'viewer', params: nameParam, query: repoQuery }), async (c) => {
    const q = repoQuery.parse(c.req.query());
    return c.json({ archives: await listClientArchives(s, c.req.param('name'), q.repo) });
  });
  app.get('/archives/:id', op({ tag, summary: 'An archive: name, client, repository, time, sizes, job and policy', role: 'viewer', params: idParam, query: repoQuery }), async (c) => {
    const q = repoQuery.parse(c.req.query());
    return c.json(await resolveArchive(s, c.req.param('id'), q.repo));
  });
  app.get('/archives/:id/tree', op({ tag, summary: 'One page of a directory of the archive, sorted by name (a file path answers its entry)', role: 'viewer', params: idParam, query: treeQuery }), async (c) => {
    const q = treeQuery.parse(c.req.query());
    const arg = { archive: c.req.param('id'), repository: q.repo };
    const path = pathArg(q);
    if (path.length) {
      const st = await statArchivePath(s, arg, path);
      if (st.entry.type !== 'dir') return c.json({ archive: st.archive.id, entry: entryJson(st.entry) });
    }
    const page = await browseArchive(s, arg, path, { offset: q.offset, limit: q.limit });
    return c.json({ archive: page.archive.id, path: path.toString('utf8'), total: page.total, offset: page.offset, entries: page.entries.map(entryJson) });
  });
  app.get('/archives/:id/find', op({ tag, summary: 'Search the archive by path (bounded)', role: 'viewer', params: idParam, query: findQuery }), async (c) => {
    const q = findQuery.parse(c.req.query());
    const r = await findInArchive(s, { archive: c.req.param('id'), repository: q.repo }, q.pattern, q.limit);
    return c.json({ archive: r.archive.id, truncated: r.truncated, entries: r.entries.map(entryJson) });
  });
  app.get(
    '/archives/:id/download',
    op({ tag, summary: 'Download paths of the archive as a POSIX tar (or tar.gz), streamed while it is read; recorded in the audit log', role: 'operator', params: idParam, query: downloadQuery }),
    async (c) => {
      const q = downloadQuery.parse(c.req.query());
      const paths = [...(c.req.queries('path') ?? []).map((p) => pathArg({ path: p })), ...(c.req.queries('pathB64') ?? []).map((p) => pathArg({ pathB64: p }))];
      const user = principalOf(c).user;
      const gzip = q.gzip === '1' || q.gzip === 'true';
      const d = await downloadArchive(s, { archive: c.req.param('id'), repository: q.repo }, paths, { gzip, actor: { userId: user.id, name: user.username } });
      const headers: Record<string, string> = { 'content-type': d.contentType, 'content-disposition': disposition(d.filename), 'cache-control': 'no-store' };
      if (d.size !== null) headers['content-length'] = String(d.size);
      return new Response(Readable.toWeb(d.stream) as ReadableStream<Uint8Array>, { status: 200, headers });
    },
  );
  return app;
}
