// Users (admin only) and one's own account: password and API tokens.
import { Hono } from 'hono';
import { html } from 'hono/html';
import { changeOwnPassword, createApiToken, listApiTokens, revokeApiToken, type Principal } from '../../services/auth.js';
import { generatePassword } from '../../infra/passwords.js';
import { addUser, listUsers, removeUser, roles, updateUser } from '../../services/users.js';
import { clientIp, principalOf, requireRole, setSessionCookie } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { when } from '../views/format.js';
import { csrfField, layout, select, type Html } from '../views/layout.js';
import { formFields } from './form.js';

export function usersPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.use('*', requireRole('admin'));

  const listPage = async (p: Principal, created?: { username: string; password: string; reset?: boolean }): Promise<Html> => {
    const rows = await listUsers(s);
    const body = html`<h1>Users</h1>
${created ? html`<div class="card ok" role="status" id="new-password">User <strong>${created.username}</strong> ${created.reset ? 'has a new password' : 'added'}. Their password, shown only now: <code>${created.password}</code></div>` : ''}
<form method="post" action="/users" class="card inline-form" id="add-user">${csrfField(p)}
  <strong>New user:</strong>
  <label>Name <input name="username" required></label>
  <label>Role ${select('role', roles, 'viewer')}</label>
  <label>Password <input name="password" type="password" minlength="12" autocomplete="new-password" placeholder="empty = generate one"></label>
  <button type="submit" class="primary">Add user</button>
</form>
<table class="grid" id="users"><thead><tr><th>User</th><th>Role</th><th>State</th><th>Last login</th><th>Created</th><th></th></tr></thead>
<tbody>${rows.map(
      (u) => html`<tr><td>${u.username}</td>
<td><form method="post" action="/users/${encodeURIComponent(u.username)}" class="inline-form">${csrfField(p)}${select('role', roles, u.role, { id: `role-${u.id}` })}<button type="submit">Set role</button></form></td>
<td>${u.disabled ? 'disabled' : 'active'}</td><td>${when(u.lastLoginAt)}</td><td>${when(u.createdAt)}</td>
<td>${u.id === p.user.id
  ? html`<span class="muted">you</span>`
  : html`<form method="post" action="/users/${encodeURIComponent(u.username)}" class="inline-form">${csrfField(p)}<input type="hidden" name="disabled" value="${u.disabled ? 'false' : 'true'}"><button type="submit">${u.disabled ? 'Enable' : 'Disable'}</button></form>
<form method="post" action="/users/${encodeURIComponent(u.username)}/password" class="inline-form" data-confirm="Give this user a new generated password? Their sessions end and their API tokens are revoked.">${csrfField(p)}<button type="submit">Reset password</button></form>
<form method="post" action="/users/${encodeURIComponent(u.username)}/delete" class="inline-form" data-confirm="Remove this user?">${csrfField(p)}<button type="submit" class="danger">Remove</button></form>`}</td></tr>`,
    )}</tbody></table>`;
    return layout({ title: 'Users', principal: p, active: 'users', body });
  };

  app.get('/', async (c) => c.html(await listPage(principalOf(c))));

  app.post('/', async (c) => {
    const f = await formFields(c);
    const { user, generatedPassword } = await addUser(s, { username: f.username ?? '', role: (roles as readonly string[]).includes(f.role ?? '') ? (f.role as (typeof roles)[number]) : 'viewer', password: f.password || undefined });
    return c.html(await listPage(principalOf(c), generatedPassword ? { username: user.username, password: generatedPassword } : undefined), 201);
  });

  app.post('/:name', async (c) => {
    const f = await formFields(c);
    const patch: { role?: (typeof roles)[number]; disabled?: boolean } = {};
    if (f.role) patch.role = (roles as readonly string[]).includes(f.role) ? (f.role as (typeof roles)[number]) : 'viewer';
    if (f.disabled === 'true' || f.disabled === 'false') patch.disabled = f.disabled === 'true';
    await updateUser(s, c.req.param('name'), patch, principalOf(c).user.id);
    return c.redirect('/users', 303);
  });

  app.post('/:name/password', async (c) => {
    const password = generatePassword();
    const row = await updateUser(s, c.req.param('name'), { password }, principalOf(c).user.id);
    return c.html(await listPage(principalOf(c), { username: row.username, password, reset: true }));
  });

  app.post('/:name/delete', async (c) => {
    await removeUser(s, c.req.param('name'), principalOf(c).user.id);
    return c.redirect('/users', 303);
  });
  return app;
}

export function accountPages(deps: WebDeps) {
  const s = deps.services;
  const app = new Hono<WebEnv>();
  app.use('*', requireRole('viewer'));

  const page = async (p: Principal, note?: Html): Promise<Html> => {
    const tokens = await listApiTokens(s, p);
    const body = html`<h1>Your account</h1>
${note ?? ''}
<p>You are <strong>${p.user.username}</strong>, ${p.user.role}.</p>
<h2>Change your password</h2>
<form method="post" action="/account/password" class="stacked" id="password-form">${csrfField(p)}
  <label>Current password <input name="current" type="password" autocomplete="current-password" required></label>
  <label>New password (12 characters or more) <input name="password" type="password" minlength="12" autocomplete="new-password" required></label>
  <label>Repeat it <input name="repeat" type="password" minlength="12" autocomplete="new-password" required></label>
  <button type="submit" class="primary">Change password</button>
</form>
<h2>API tokens</h2>
<p class="muted">For scripts: <code>Authorization: Bearer &lt;token&gt;</code> on <a href="/api/v1/openapi.json">the JSON API</a>. A token acts with your role.</p>
<form method="post" action="/account/tokens" class="card inline-form" id="add-token">${csrfField(p)}
  <label>Name <input name="name" required placeholder="nightly report"></label>
  <label>Expires in days <input name="expiresInDays" type="number" min="1" max="3650" placeholder="never"></label>
  <button type="submit">Create token</button>
</form>
${tokens.length
  ? html`<table class="grid" id="tokens"><thead><tr><th>Name</th><th>Starts with</th><th>Created</th><th>Last used</th><th>Expires</th><th></th></tr></thead>
<tbody>${tokens.map(
      (t) => html`<tr><td>${t.name}</td><td><code>${t.prefix}…</code></td><td>${when(t.createdAt)}</td><td>${when(t.lastUsedAt)}</td><td>${t.revokedAt ? `revoked ${when(t.revokedAt)}` : when(t.expiresAt)}</td>
<td>${t.revokedAt ? '' : html`<form method="post" action="/account/tokens/${t.id}/revoke" class="inline-form">${csrfField(p)}<button type="submit" class="danger">Revoke</button></form>`}</td></tr>`,
    )}</tbody></table>`
  : html`<p class="muted">No tokens.</p>`}`;
    return layout({ title: 'Your account', principal: p, active: 'account', body });
  };

  app.get('/', async (c) => c.html(await page(principalOf(c))));
  app.post('/password', async (c) => {
    const f = await formFields(c);
    const r = await changeOwnPassword(s, principalOf(c), { current: f.current ?? '', password: f.password ?? '', repeat: f.repeat ?? '' }, { ip: clientIp(c, s.config.web.trustedProxies), userAgent: c.req.header('user-agent') });
    // This browser continues on a new session; the old cookie died with every other one.
    if (r.session) setSessionCookie(c, r.session.token, r.session.expiresAt, s.config.web.publicUrl);
    return c.html(await page(r.principal, html`<div class="card ok" role="status">Password changed; your other sessions were logged out and your API tokens revoked.</div>`));
  });
  app.post('/tokens', async (c) => {
    const f = await formFields(c);
    const { token, row } = await createApiToken(s, principalOf(c), { name: f.name ?? '', expiresInDays: f.expiresInDays || undefined });
    return c.html(await page(principalOf(c), html`<div class="card ok" role="status" id="new-token">Token <strong>${row.name}</strong>, shown only now: <code>${token}</code></div>`), 201);
  });
  app.post('/tokens/:id/revoke', async (c) => {
    await revokeApiToken(s, principalOf(c), c.req.param('id'));
    return c.redirect('/account', 303);
  });
  return app;
}
