// Hooks: commands an admin sets per client and per policy, run on the client over the backup's
// SSH connection (activities/remote-borg/hooks.ts). A command is data: stored as typed, run once
// by `sh -c` on the client, shown as text; nothing here ever interprets it.
import { z } from 'zod';
import * as clientsQ from '../db/queries/clients.js';
import * as policiesQ from '../db/queries/policies.js';
import type { Hook, HookSet } from '../db/schema.js';
import type { ServiceDeps } from './deps.js';
import { notFound } from './errors.js';

/** When a hook runs. `onFailure` after a failed (or violated) backup, `after` after every backup. */
export const hookPhases = ['before', 'onFailure', 'after'] as const;
export type HookPhase = (typeof hookPhases)[number];

/** A hook without a timeout of its own may run this long before it is killed. */
export const DEFAULT_HOOK_TIMEOUT_SECONDS = 600;
/** A day: a longer "hook" is a job of its own. */
export const MAX_HOOK_TIMEOUT_SECONDS = 86_400;
/** Long enough for a small script inline; a longer one belongs in a file on the client. */
export const MAX_HOOK_COMMAND_LENGTH = 4096;
export const MAX_HOOKS_PER_PHASE = 16;

export const hookCommandSchema = z
  .string()
  .max(MAX_HOOK_COMMAND_LENGTH, `a hook command is at most ${MAX_HOOK_COMMAND_LENGTH} characters`)
  .refine((c) => c.trim().length > 0, 'a hook command must not be empty')
  // A shell cannot receive NUL in an argument (infra/shell-quote.ts refuses it too).
  .refine((c) => !c.includes('\0'), 'a hook command must not contain NUL');

export const hookTimeoutSchema = z.number().int().min(1).max(MAX_HOOK_TIMEOUT_SECONDS);

export const hookSchema = z.object({ command: hookCommandSchema, timeoutSeconds: hookTimeoutSchema.optional() }).strict() satisfies z.ZodType<Hook>;

const phaseList = z.array(hookSchema).max(MAX_HOOKS_PER_PHASE, `at most ${MAX_HOOKS_PER_PHASE} hooks per phase`);
export const hookSetSchema = z.object({ before: phaseList.optional(), onFailure: phaseList.optional(), after: phaseList.optional() }).strict() satisfies z.ZodType<HookSet>;

/** "90", "90s", "10m", "2h" → seconds (CLI flags and form fields). */
export function parseHookTimeout(text: string): number {
  const m = /^\s*(\d{1,6})\s*(s|m|h)?\s*$/.exec(text);
  const seconds = m ? Number(m[1]) * { s: 1, m: 60, h: 3600 }[(m[2] ?? 's') as 's' | 'm' | 'h'] : NaN;
  const r = hookTimeoutSchema.safeParse(seconds);
  if (!r.success) {
    throw new z.ZodError([{ code: 'custom', path: ['timeoutSeconds'], message: `${JSON.stringify(text)} is not a timeout between 1s and ${MAX_HOOK_TIMEOUT_SECONDS / 3600}h (e.g. 90s, 10m, 1h)`, input: text }]);
  }
  return r.data;
}

/** A stored set as the runner uses it: every phase present; anything a hand-edited row got wrong is refused by name. */
export function hooksOf(stored: unknown): Required<HookSet> {
  const set = hookSetSchema.parse(stored ?? {});
  return { before: set.before ?? [], onFailure: set.onFailure ?? [], after: set.after ?? [] };
}

/** A set with empty phases left out, so that `{}` means "no hooks" wherever it is stored or shown. */
function compact(set: HookSet): HookSet {
  const out: HookSet = {};
  for (const p of hookPhases) if (set[p]?.length) out[p] = set[p];
  return out;
}

/**
 * The hooks of one backup, in the order they run: before — the client's, then the policy's;
 * onFailure and after — the policy's, then the client's (undone in reverse, like a stack).
 */
export function backupHooks(client: unknown, policy: unknown): Required<HookSet> {
  const c = hooksOf(client);
  const p = hooksOf(policy);
  return { before: [...c.before, ...p.before], onFailure: [...p.onFailure, ...c.onFailure], after: [...p.after, ...c.after] };
}

export const hookTimeoutOf = (h: Hook) => h.timeoutSeconds ?? DEFAULT_HOOK_TIMEOUT_SECONDS;

/** Replaces a client's hooks (the whole set: what the CLI, the API and the form send). */
export async function setClientHooks(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string, raw: unknown): Promise<HookSet> {
  const hooks = compact(hookSetSchema.parse(raw));
  const c = await clientsQ.findClientByName(deps.db, name);
  if (!c) throw notFound('client', name);
  const row = await clientsQ.updateClient(deps.db, c.id, { hooks });
  if (!row) throw notFound('client', name);
  deps.log.info({ client: name, hooks: hookPhases.map((p) => `${p}=${hooks[p]?.length ?? 0}`).join(' ') }, 'client hooks set');
  return row.hooks;
}

/** Replaces a policy's hooks. */
export async function setPolicyHooks(deps: Pick<ServiceDeps, 'db' | 'log'>, name: string, raw: unknown): Promise<HookSet> {
  const hooks = compact(hookSetSchema.parse(raw));
  const p = await policiesQ.findPolicyByName(deps.db, name);
  if (!p) throw notFound('policy', name);
  const row = await policiesQ.updatePolicy(deps.db, p.id, { hooks });
  if (!row) throw notFound('policy', name);
  deps.log.info({ policy: name, hooks: hookPhases.map((ph) => `${ph}=${hooks[ph]?.length ?? 0}`).join(' ') }, 'policy hooks set');
  return row.hooks;
}

/**
 * The set the CLI's flags describe, from the one stored: each phase given replaces that phase;
 * `clear` starts from nothing; `timeoutSeconds` applies to every hook given.
 */
export function editHookSet(current: unknown, o: { before?: string[]; onFailure?: string[]; after?: string[]; timeoutSeconds?: number; clear?: boolean }): HookSet {
  const next: HookSet = o.clear ? {} : { ...hooksOf(current) };
  for (const p of hookPhases) {
    const given = o[p];
    if (given?.length) next[p] = given.map((command) => (o.timeoutSeconds === undefined ? { command } : { command, timeoutSeconds: o.timeoutSeconds }));
  }
  return hookSetSchema.parse(next);
}

/** The text a form's textarea holds for a phase: one command per line. */
export function hooksToLines(hooks: Hook[] | undefined): string {
  return (hooks ?? []).map((h) => h.command).join('\n');
}

/** A form's textarea (one command per line, blank lines ignored) with one timeout for all. */
export function hooksFromLines(text: string, timeoutSeconds?: number): Hook[] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map((command) => (timeoutSeconds === undefined ? { command } : { command, timeoutSeconds }));
}
