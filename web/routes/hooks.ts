// The hooks form (web/views/hooks.ts) as a HookSet: one command per line per phase, one timeout
// per phase. services/hooks.ts validates the result.
import type { Hono } from 'hono';
import type { HookSet } from '../../db/schema.js';
import { hookPhases, hooksFromLines, parseHookTimeout } from '../../services/hooks.js';
import { requireRole } from '../auth.js';
import type { WebEnv } from '../env.js';
import { formFields } from './form.js';

export function hookSetFromForm(f: Record<string, string>): HookSet {
  const out: HookSet = {};
  for (const ph of hookPhases) {
    const t = f[`${ph}Timeout`]?.trim();
    out[ph] = hooksFromLines(f[ph] ?? '', t ? parseHookTimeout(t) : undefined);
  }
  return out;
}

/** `POST <base>/:name/hooks` (admin): replaces the hooks, then back to the page's hooks section. */
export function hooksFormRoute(app: Hono<WebEnv>, base: string, save: (name: string, hooks: HookSet) => Promise<unknown>): void {
  app.post('/:name/hooks', requireRole('admin'), async (c) => {
    const name = c.req.param('name');
    await save(name, hookSetFromForm(await formFields(c)));
    return c.redirect(`${base}/${encodeURIComponent(name)}#hooks`, 303);
  });
}
