// /api/v1/clients
import { Hono } from 'hono';
import { z } from 'zod';
import { addClient, addClientInput, getClient, listClientsInput, listClientsPage, removeClient, testClient, updateClient, updateClientInput } from '../../services/clients.js';
import { hookSetSchema, setClientHooks } from '../../services/hooks.js';
import { clientDumps, dumpListView, setClientDumps, setDumpsInput } from '../../services/dumps.js';
import type { WebDeps, WebEnv } from '../env.js';
import { jsonBody } from './body.js';
import { op } from './openapi.js';

const tag = 'clients';
const nameParam = z.object({ name: z.string().describe('client name') });

export function clientsApi(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  // Paginated with `limit` (and `cursor`); without both the answer is the whole list as before.
  app.get(
    '/',
    op({ tag, summary: 'List clients by name, optionally those whose name contains `search`; with `limit`, a page: pass `nextCursor` as `cursor` for the next one', role: 'viewer', query: listClientsInput }),
    async (c) => c.json(await listClientsPage(s, listClientsInput.parse(c.req.query()))),
  );
  app.post('/', op({ tag, summary: 'Add a client', role: 'admin', body: addClientInput, status: 201 }), async (c) => {
    const input = addClientInput.parse(await jsonBody(c));
    return c.json(await addClient(s, input), 201);
  });
  app.get('/:name', op({ tag, summary: 'Show a client', role: 'viewer', params: nameParam }), async (c) => c.json(await getClient(s, c.req.param('name'))));
  app.patch('/:name', op({ tag, summary: 'Change a client', role: 'admin', params: nameParam, body: updateClientInput }), async (c) => {
    const input = updateClientInput.parse(await jsonBody(c));
    return c.json(await updateClient(s, c.req.param('name'), input));
  });
  app.delete('/:name', op({ tag, summary: 'Remove a client (its archives stay)', role: 'admin', params: nameParam, status: 204 }), async (c) => {
    await removeClient(s, c.req.param('name'));
    return c.body(null, 204);
  });
  app.post(
    '/:name/test',
    op({ tag, summary: 'Test the SSH connection: pins the host key on first contact, reports the borg version and missing paths', role: 'operator', params: nameParam }),
    async (c) => c.json(await testClient(s, c.req.param('name'), { signal: AbortSignal.timeout(60_000) })),
  );
  // Hooks are their own resource: the whole set is replaced at once, and a PATCH of the client
  // (its address, paths) never carries commands along by accident.
  app.get('/:name/hooks', op({ tag, summary: "Show a client's hooks (commands run on it around a backup)", role: 'viewer', params: nameParam }), async (c) =>
    c.json({ hooks: (await getClient(s, c.req.param('name'))).hooks }),
  );
  app.put(
    '/:name/hooks',
    op({ tag, summary: "Replace a client's hooks: before, onFailure, after; each { command, timeoutSeconds? }", role: 'admin', params: nameParam, body: hookSetSchema }),
    async (c) => c.json({ hooks: await setClientHooks(s, c.req.param('name'), hookSetSchema.parse(await jsonBody(c))) }),
  );
  // Database dumps (issue 24 point 2): the whole list, replaced at once.
  app.get('/:name/dumps', op({ tag, summary: "List the client's database dumps with their archive entries", role: 'viewer', params: nameParam }), async (c) =>
    c.json({ dumps: dumpListView(clientDumps(await getClient(s, c.req.param('name')))) }),
  );
  app.put(
    '/:name/dumps',
    op({ tag, summary: "Replace the client's database dumps (credentials come from the client's own configuration, never from here)", role: 'admin', params: nameParam, body: setDumpsInput }),
    async (c) => {
      const input = setDumpsInput.parse(await jsonBody(c));
      return c.json({ dumps: dumpListView(await setClientDumps(s, c.req.param('name'), input)) });
    },
  );
  return app;
}
