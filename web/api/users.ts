// /api/v1/users (admin) and /api/v1/tokens (one's own API tokens) and /api/v1/session.
import { Hono } from 'hono';
import { z } from 'zod';
import { createApiToken, createApiTokenInput, listApiTokens, revokeApiToken } from '../../services/auth.js';
import { addUser, addUserInput, listUsers, removeUser, updateUser, updateUserInput } from '../../services/users.js';
import { principalOf } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { jsonBody } from './body.js';
import { op } from './openapi.js';

const nameParam = z.object({ name: z.string().describe('user name') });

export function usersApi(deps: WebDeps) {
  const s = deps.services;
  const tag = 'users';
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'List console users', role: 'admin' }), async (c) => c.json({ users: await listUsers(s) }));
  app.post('/', op({ tag, summary: 'Add a user; without a password one is generated and returned once', role: 'admin', body: addUserInput, status: 201 }), async (c) => {
    const { user, generatedPassword } = await addUser(s, addUserInput.parse(await jsonBody(c)));
    return c.json({ ...user, ...(generatedPassword ? { generatedPassword } : {}) }, 201);
  });
  app.patch('/:name', op({ tag, summary: "Change a user's role, password or disabled flag (a new password or disabling ends every session and revokes every API token of the user)", role: 'admin', params: nameParam, body: updateUserInput }), async (c) => {
    const input = updateUserInput.parse(await jsonBody(c));
    return c.json(await updateUser(s, c.req.param('name'), input, principalOf(c).user.id));
  });
  app.delete('/:name', op({ tag, summary: 'Remove a user', role: 'admin', params: nameParam, status: 204 }), async (c) => {
    await removeUser(s, c.req.param('name'), principalOf(c).user.id);
    return c.body(null, 204);
  });
  return app;
}

export function tokensApi(deps: WebDeps) {
  const s = deps.services;
  const tag = 'tokens';
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag, summary: 'Your API tokens (never their text)', role: 'viewer' }), async (c) => c.json({ tokens: await listApiTokens(s, principalOf(c)) }));
  app.post('/', op({ tag, summary: 'Create an API token acting with your role; the token text is in the answer, once', role: 'viewer', body: createApiTokenInput, status: 201 }), async (c) => {
    const { token, row } = await createApiToken(s, principalOf(c), createApiTokenInput.parse(await jsonBody(c)));
    return c.json({ ...row, token }, 201);
  });
  app.delete('/:id', op({ tag, summary: 'Revoke one of your API tokens', role: 'viewer', params: z.object({ id: z.string().uuid() }), status: 204 }), async (c) => {
    await revokeApiToken(s, principalOf(c), c.req.param('id'));
    return c.body(null, 204);
  });
  return app;
}

export function sessionApi() {
  const app = new Hono<WebEnv>();
  app.get('/', op({ tag: 'session', summary: 'Who you are, and the CSRF token of your session (for X-CSRF-Token)', role: 'viewer' }), (c) => {
    const p = principalOf(c);
    return c.json({ user: p.user, via: p.via, csrfToken: p.session?.csrfToken ?? null, expiresAt: p.session?.expiresAt ?? null });
  });
  return app;
}
