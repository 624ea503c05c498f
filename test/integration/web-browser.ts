// A browser for app.request(): cookies, the session's CSRF token, form posts and JSON API calls
// (used by the web integration tests).
import type { WebApp } from '../../web/app.js';

/** The password of the users the web tests create. */
export const password = 'correct horse battery staple';

/** A browser's cookies and CSRF token for app.request(). */
export class Browser {
  cookies = new Map<string, string>();
  csrf = '';
  private static n = 0;
  /** Each browser comes from its own address, so login rate limits per IP do not mix. */
  private readonly env: { incoming: { socket: { remoteAddress: string } } };
  constructor(
    private readonly app: WebApp,
    address = `192.0.2.${++Browser.n}`,
  ) {
    this.env = { incoming: { socket: { remoteAddress: address } } };
  }
  request(path: string, init: RequestInit) {
    return this.app.request(path, init, this.env);
  }
  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  absorb(res: Response) {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (value === '' || /max-age=0/i.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }
  async get(path: string, headers: Record<string, string> = {}) {
    return this.absorb(await this.request(path, { headers: { cookie: this.cookieHeader(), ...headers } }));
  }
  async post(path: string, form: Record<string, string>, opts: { csrf?: boolean } = {}) {
    const body = new URLSearchParams({ ...(opts.csrf === false ? {} : { _csrf: this.csrf }), ...form });
    return this.absorb(await this.request(path, { method: 'POST', body, headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' } }));
  }
  async api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    return this.absorb(
      await this.request(path, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
        headers: { cookie: this.cookieHeader(), 'x-csrf-token': this.csrf, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      }),
    );
  }
  async login(username: string, pw = password) {
    const page = await this.get('/login');
    const token = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    const res = this.absorb(
      await this.request('/login', {
        method: 'POST',
        body: new URLSearchParams({ _csrf: token, username, password: pw, next: '/' }),
        headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' },
      }),
    );
    if (res.status === 303) {
      const s = await (await this.get('/api/v1/session')).json();
      this.csrf = (s as { csrfToken: string }).csrfToken;
    }
    return res;
  }
}
