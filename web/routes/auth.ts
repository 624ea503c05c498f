// Log in and out. The login form is protected by a double-submit cookie (there is no session
// yet); a successful login always opens a new session (no fixation).
import { randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { html } from 'hono/html';
import { login, logout, sameSecret } from '../../services/auth.js';
import { forbidden, ServiceError } from '../../services/errors.js';
import { clearSessionCookie, clientIp, isHttps, loginCsrfCookie, sessionCookie, setSessionCookie } from '../auth.js';
import type { WebDeps, WebEnv } from '../env.js';
import { layout } from '../views/layout.js';
import { formFields, safeNext } from './form.js';

export function authPages(deps: WebDeps) {
  const s = deps.services;
  const publicUrl = s.config.web.publicUrl;
  const app = new Hono<WebEnv>();

  const form = (o: { csrf: string; next: string; username?: string; error?: string }) =>
    layout({
      title: 'Log in',
      principal: undefined,
      body: html`<section class="login card">
<h1>Log in to BorgCube</h1>
${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
<form method="post" action="/login">
  <input type="hidden" name="_csrf" value="${o.csrf}">
  <input type="hidden" name="next" value="${o.next}">
  <label>User name <input name="username" autocomplete="username" required autofocus value="${o.username ?? ''}"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" class="primary">Log in</button>
</form>
</section>`,
    });

  const loginToken = (c: Parameters<typeof getCookie>[0]) => {
    let t = getCookie(c, loginCsrfCookie);
    if (!t || !/^[A-Za-z0-9_-]{43}$/.test(t)) {
      t = randomBytes(32).toString('base64url');
      setCookie(c, loginCsrfCookie, t, { httpOnly: true, sameSite: 'Strict', secure: isHttps(c, publicUrl), path: '/login', maxAge: 3600 });
    }
    return t;
  };

  app.get('/login', (c) => {
    const next = safeNext(c.req.query('next'));
    if (c.get('principal')) return c.redirect(next, 303);
    return c.html(form({ csrf: loginToken(c), next }));
  });

  app.post('/login', async (c) => {
    const f = await formFields(c);
    const cookie = getCookie(c, loginCsrfCookie);
    if (!cookie || !f._csrf || !sameSecret(cookie, f._csrf)) throw forbidden('the login form expired; reload the page and try again');
    const next = safeNext(f.next);
    try {
      const r = await login(s, deps.limiter, { username: f.username ?? '', password: f.password ?? '' }, { ip: clientIp(c, s.config.web.trustedProxies), userAgent: c.req.header('user-agent') });
      setSessionCookie(c, r.token, r.expiresAt, publicUrl);
      return c.redirect(next, 303);
    } catch (err) {
      if (!(err instanceof ServiceError) || !['unauthorized', 'rate-limited', 'invalid'].includes(err.kind)) throw err;
      const status = err.kind === 'rate-limited' ? 429 : err.kind === 'invalid' ? 400 : 401;
      return c.html(form({ csrf: loginToken(c), next, username: f.username, error: err.message }), status);
    }
  });

  app.post('/logout', async (c) => {
    // CSRF-checked by the app's middleware when a session exists.
    const token = getCookie(c, sessionCookie);
    if (token) await logout(s, token);
    clearSessionCookie(c, publicUrl);
    return c.redirect('/login', 303);
  });
  return app;
}
