import type { Command } from 'commander';
import { jobLimitsOf, JOB_LIMIT_DEFAULTS } from '../../db/schema.js';
import { addClient, forgetClientHostKey, getClient, listClients, parseLimitPairs, removeClient, testClient, updateClient, type ClientView } from '../../services/clients.js';
import { printable, table, type CliContext } from '../context.js';
import { hooksCommand } from './hooks.js';
import { clientDumpsCommand } from './client-dumps.js';

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerClientCommands(program: Command, ctx: CliContext) {
  const client = program.command('client').description('manage the hosts BorgCube backs up');

  clientConfigCommands(client, ctx);
  clientConnectionCommands(client, ctx);
  clientLimitsCommand(client, ctx);
  hooksCommand(client, ctx, 'client');
  clientDumpsCommand(client, ctx);
}

const limitHelp = `a job's cost bound KEY=N (repeatable; N may end in K, M, G or T): ${Object.keys(JOB_LIMIT_DEFAULTS).join(', ')}`;

/** A client's per-job bounds (DESIGN.md §4 invariant 11): shown, changed, or back to the defaults. */
function clientLimitsCommand(client: Command, ctx: CliContext) {
  client
    .command('limits')
    .description("show or change a client's per-job bounds (unset keys use the defaults)")
    .argument('<name>')
    .option('--set <key=value>', limitHelp, collect, [])
    .option('--unset <key>', 'back to the default for this key (repeatable)', collect, [])
    .option('--reset', 'every key back to its default')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { set: string[]; unset: string[]; reset?: boolean; json?: boolean }) => {
      let c = await getClient(ctx.deps(), name);
      if (o.set.length || o.unset.length || o.reset) {
        const next: Record<string, number | undefined> = o.reset ? {} : { ...c.limits, ...parseLimitPairs(o.set) };
        for (const k of o.unset) delete next[k];
        c = await updateClient(ctx.deps(), name, { limits: next });
      }
      const effective = jobLimitsOf(c.limits);
      if (o.json) return ctx.printJson({ client: c.name, limits: c.limits, effective });
      ctx.print(
        table(
          ['LIMIT', 'VALUE', ''],
          (Object.keys(effective) as Array<keyof typeof effective>).map((k) => [k, String(effective[k]), c.limits[k] === undefined ? 'default' : 'set']),
        ),
      );
    });
}

/** Adding, listing, showing and removing clients. */
function clientConfigCommands(client: Command, ctx: CliContext) {
  client
    .command('add')
    .description('add a client (authorize `borgcube server-key` on it first)')
    .argument('<name>', 'client name')
    .requiredOption('--host <host>', 'host name or address to SSH to')
    .option('--port <port>', 'SSH port', '22')
    .option('--user <user>', 'account BorgCube logs in as', 'root')
    .requiredOption('--path <path>', 'absolute path to back up (repeatable)', collect)
    .option('--exclude <pattern>', 'borg exclude pattern (repeatable)', collect, [])
    .option('--borg-path <path>', 'borg on the client (absolute path or command); deployed when absent', 'borg')
    .option('--dedup-scope <scope>', 'client: dedup against its own archives only; repository: against all chunks (lets the client learn every chunk id)', 'client')
    .option('--compression <spec>', 'borg compression for its backups (lz4, zstd,3, zlib,6, lzma,6, auto,zstd, none)', 'lz4')
    .option('--limit <key=value>', limitHelp, collect, [])
    .option('--json', 'print JSON')
    .action(async (name: string, o: { host: string; port: string; user: string; path: string[]; exclude: string[]; borgPath: string; dedupScope: string; compression: string; limit: string[]; json?: boolean }) => {
      const row = await addClient(ctx.deps(), {
        name,
        host: o.host,
        port: o.port,
        user: o.user,
        paths: o.path,
        excludes: o.exclude,
        borgPath: o.borgPath,
        dedupScope: o.dedupScope as 'client' | 'repository',
        compression: o.compression,
        limits: parseLimitPairs(o.limit),
      });
      if (o.json) return ctx.printJson(row);
      ctx.print(`client ${row.name} added (${row.sshUser}@${row.host}:${row.port}); check it with: borgcube client test ${row.name}`);
    });

  client
    .command('list')
    .description('list clients')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const rows = await listClients(ctx.deps());
      if (o.json) return ctx.printJson(rows);
      ctx.print(
        rows.length
          ? table(['NAME', 'TARGET', 'PATHS', 'BORG', 'HOST KEY'], rows.map((r) => [r.name, `${r.sshUser}@${r.host}:${r.port}`, r.paths.join(','), r.borgVersion ?? '?', r.hostKeyFingerprint ?? 'not pinned']))
          : 'no clients yet (borgcube client add NAME --host H --path P)',
      );
    });

  client
    .command('show')
    .description('show one client')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const c = await getClient(ctx.deps(), name);
      if (o.json) return ctx.printJson(c);
      ctx.print(showClient(c));
    });

  client
    .command('remove')
    .description('remove a client (its archives stay in the repositories)')
    .argument('<name>')
    .action(async (name: string) => {
      await removeClient(ctx.deps(), name);
      ctx.print(`client ${name} removed`);
    });
}

/** Testing the SSH connection to a client and forgetting its pinned host key. */
function clientConnectionCommands(client: Command, ctx: CliContext) {
  client
    .command('test')
    .description('connect over SSH: pin the host key on first contact (refuse a changed one), report borg')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: { json?: boolean }) => {
      const r = await testClient(ctx.deps(), name);
      if (o.json) return ctx.printJson(r);
      ctx.print(
        [
          `${r.client}: connected; host key ${r.hostKeyFingerprint}${r.pinnedNow ? ' (pinned now)' : ' (matches the pinned key)'}`,
          r.borgVersion ? `borg ${r.borgVersion} at ${r.borgPath}` : `no borg at ${r.borgPath}: BorgCube will deploy its own for each backup`,
          ...r.missingPaths.map((p) => `warning: ${printable(p)} does not exist on the client`),
        ].join('\n'),
      );
    });

  client
    .command('forget-host-key')
    .description('forget the pinned host key (after a reinstall); the next contact pins the new one')
    .argument('<name>')
    .action(async (name: string) => {
      await forgetClientHostKey(ctx.deps(), name);
      ctx.print(`host key of ${name} forgotten; run borgcube client test ${name} to pin the current one`);
    });
}

function showClient(c: ClientView): string {
  const rows: Array<[string, string]> = [
    ['name', c.name],
    ['target', `${c.sshUser}@${c.host}:${c.port}`],
    ['paths', c.paths.join(' ')],
    ['excludes', c.excludes.join(' ') || '-'],
    ['borg path', c.borgPath],
    ['borg version', c.borgVersion ?? 'unknown'],
    ['dedup scope', c.dedupScope],
    ['compression', c.compression],
    ['hooks', (['before', 'onFailure', 'after'] as const).map((p) => `${c.hooks[p]?.length ?? 0} ${p}`).join(', ') + ' (borgcube client hooks NAME)'],
    ['limits', Object.entries(c.limits).map(([k, v]) => `${k}=${v}`).join(' ') || 'defaults (borgcube client limits NAME)'],
    ['dumps', c.dumps.length ? `${c.dumps.length} (borgcube client dumps ${c.name})` : 'none'],
    ['host key', c.hostKeyFingerprint ?? 'not pinned yet'],
    ['last seen', c.lastSeenAt?.toISOString() ?? 'never'],
  ];
  return rows.map(([k, v]) => `${k.padEnd(13)} ${printable(v)}`).join('\n');
}
