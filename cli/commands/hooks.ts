// `borgcube client hooks NAME …` and `borgcube policy hooks NAME …`: show or replace the commands
// run on the client around a backup (services/hooks.ts). The commands are printed as text,
// control characters escaped; they are never run or expanded here.
import type { Command } from 'commander';
import type { HookSet } from '../../db/schema.js';
import { getClient } from '../../services/clients.js';
import { invalid } from '../../services/errors.js';
import { editHookSet, hookPhases, hookTimeoutOf, parseHookTimeout, setClientHooks, setPolicyHooks } from '../../services/hooks.js';
import { getPolicy } from '../../services/policies.js';
import { printable, table, type CliContext } from '../context.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

interface HookOpts {
  before: string[];
  onFailure: string[];
  after: string[];
  timeout?: string;
  clear?: boolean;
  json?: boolean;
}

/** Adds the `hooks` subcommand to `client` or `policy`. */
export function hooksCommand(parent: Command, ctx: CliContext, owner: 'client' | 'policy') {
  const [read, write] = owner === 'client' ? [async (n: string) => (await getClient(ctx.deps(), n)).hooks, setClientHooks] : [async (n: string) => (await getPolicy(ctx.deps(), n)).hooks, setPolicyHooks];
  parent
    .command('hooks')
    .description(
      `show or set the ${owner}'s hooks: shell commands run on the client as the login account, before a backup (a failure fails it before anything is pushed), after a failed one, and after every one${owner === 'policy' ? " (in addition to the client's)" : ''}`,
    )
    .argument('<name>')
    .option('--before <command>', 'run before the backup (repeatable; replaces the before hooks)', collect, [])
    .option('--on-failure <command>', 'run after a failed backup (repeatable; replaces the on-failure hooks)', collect, [])
    .option('--after <command>', 'run after every backup, also a failed or cancelled one (repeatable; replaces the after hooks)', collect, [])
    .option('--timeout <duration>', 'timeout of each hook given here (90s, 10m, 1h; default 10m): then its process group is killed')
    .option('--clear', 'remove every hook first')
    .option('--json', 'print JSON')
    .action(async (name: string, o: HookOpts) => {
      let hooks = await read(name);
      if (o.clear || o.before.length || o.onFailure.length || o.after.length) {
        const timeoutSeconds = o.timeout === undefined ? undefined : parseHookTimeout(o.timeout);
        hooks = await write(ctx.deps(), name, editHookSet(hooks, { ...o, timeoutSeconds }));
      } else if (o.timeout !== undefined) throw invalid('--timeout applies to the hooks given with --before, --on-failure or --after');
      if (o.json) return ctx.printJson({ [owner]: name, hooks });
      ctx.print(showHooks(hooks, `${owner} ${name}`));
    });
}

function showHooks(hooks: HookSet, who: string): string {
  const rows = hookPhases.flatMap((p) => (hooks[p] ?? []).map((h) => [p === 'onFailure' ? 'on-failure' : p, `${hookTimeoutOf(h)}s`, printable(h.command)]));
  return rows.length ? table(['WHEN', 'TIMEOUT', 'COMMAND'], rows) : `${who} has no hooks`;
}
