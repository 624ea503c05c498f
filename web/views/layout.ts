// The page frame and small shared pieces. Everything is built with `html` from hono/html, which
// escapes every interpolated string: a host name, path, log line or archive name from a client
// is always text, never markup. Only `html` fragments (already escaped) nest unescaped.
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { Principal } from '../../services/auth.js';
import { hasRole } from '../../services/auth.js';
import { assetUrl } from '../static.js';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface PageOptions {
  title: string;
  principal: Principal | undefined;
  active?: 'dashboard' | 'clients' | 'repositories' | 'policies' | 'jobs' | 'alerts' | 'users' | 'account';
  body: Html;
  /** ES modules from web/static to load (no inline scripts: the CSP forbids them). */
  scripts?: string[];
  /** Reload the page every N seconds (a meta refresh: no script needed). */
  refreshSeconds?: number;
}

export function layout(o: PageOptions): Html {
  const p = o.principal;
  const nav = (key: PageOptions['active'], href: string, label: string) => html`<a href="${href}" class="${o.active === key ? 'active' : ''}">${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · BorgCube</title>
${o.refreshSeconds ? html`<meta http-equiv="refresh" content="${o.refreshSeconds}">` : ''}
<link rel="stylesheet" href="${assetUrl('app.css')}">
<script type="module" src="${assetUrl('forms.js')}"></script>
${(o.scripts ?? []).map((s) => html`<script type="module" src="${assetUrl(s)}"></script>`)}
</head>
<body>
<header class="top">
  <a class="brand" href="/">BorgCube</a>
  ${p
    ? html`<nav>
    ${nav('dashboard', '/', 'Dashboard')}
    ${nav('clients', '/clients', 'Clients')}
    ${nav('repositories', '/repositories', 'Repositories')}
    ${nav('policies', '/policies', 'Policies')}
    ${nav('jobs', '/jobs', 'Jobs')}
    ${nav('alerts', '/alerts', 'Alerts')}
    ${hasRole(p.user.role, 'admin') ? nav('users', '/users', 'Users') : ''}
  </nav>
  <div class="me">
    <a href="/account" class="${o.active === 'account' ? 'active' : ''}">${p.user.username}</a> <span class="role">${p.user.role}</span>
    <form method="post" action="/logout" class="inline">${csrfField(p)}<button type="submit" class="link">Log out</button></form>
  </div>`
    : ''}
</header>
<main${p?.session ? html` data-csrf="${p.session.csrfToken}"` : ''}>
${o.body}
</main>
</body>
</html>`;
}

/** The hidden CSRF field every form of a logged-in page carries. */
export function csrfField(p: Principal | undefined): Html {
  return p?.session ? html`<input type="hidden" name="_csrf" value="${p.session.csrfToken}">` : html``;
}

export function stateBadge(state: string | null | undefined): Html {
  const s = state ?? 'none';
  return html`<span class="badge state-${/^[a-z-]+$/.test(s) ? s : 'other'}" data-state="${s}">${s}</span>`;
}

export function errorPage(o: { principal: Principal | undefined; status: number; message: string; issues?: Array<{ path: string; message: string }> }): Html {
  const title = o.status === 403 ? 'Not allowed' : o.status === 404 ? 'Not found' : o.status >= 500 ? 'Something went wrong' : 'That did not work';
  return layout({
    title,
    principal: o.principal,
    body: html`<h1>${title}</h1>
<p class="error" role="alert">${o.message}</p>
${o.issues?.length ? html`<ul class="issues">${o.issues.map((i) => html`<li><code>${i.path || '(input)'}</code>: ${i.message}</li>`)}</ul>` : ''}
<p><a href="/" data-back>Go back</a> · <a href="/">Dashboard</a></p>`,
  });
}

/** A select with the current value chosen. */
export function select(name: string, options: ReadonlyArray<string | { value: string; label: string }>, current?: string | null, extra: { empty?: string; id?: string } = {}): Html {
  return html`<select name="${name}" id="${extra.id ?? name}">
${extra.empty !== undefined ? html`<option value="">${extra.empty}</option>` : ''}
${options.map((o) => {
  const v = typeof o === 'string' ? o : o.value;
  const l = typeof o === 'string' ? o : o.label;
  return html`<option value="${v}"${v === current ? html` selected` : ''}>${l}</option>`;
})}
</select>`;
}
