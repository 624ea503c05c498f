import type { Command } from 'commander';
import type { RepositoryCheck } from '../../db/schema.js';
import { listRepositoryChecks } from '../../services/policies.js';
import { addRepository, effectiveBackupLimit, encryptionModes, getRepository, listRepositories, repairRepository, updateRepository, type RepositoryView } from '../../services/repositories.js';
import { parseMaxBackups, table, UsageError, type CliContext } from '../context.js';
import { cliActor, requireRoot } from './recovery.js';

export function registerRepoCommands(program: Command, ctx: CliContext) {
  const repo = program.command('repo').description('manage Borg repositories on this storage host');

  repo
    .command('add')
    .description('initialize a new Borg repository (owned by the storage account, mode 0700) and store its key')
    .argument('<name>', 'repository name')
    .requiredOption('--path <path>', 'absolute path of the new repository (must not exist, or be an empty folder)')
    .option('--encryption <mode>', `one of ${encryptionModes.join(', ')}`, 'repokey')
    .option('--storage-host <host>', "the storage host that holds it (default: this one, BORGCUBE_STORAGE_HOST); another host's repositories are created on that host")
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { path: string; encryption: string; storageHost?: string; json?: boolean }) => {
      const row = await addRepository(ctx.deps(), { name, path: opts.path, encryption: opts.encryption as (typeof encryptionModes)[number], storageHost: opts.storageHost });
      if (opts.json) ctx.printJson(row);
      else ctx.print(`repository ${row.name} created at ${row.path} on storage host ${row.storageHost} (${row.encryption}, borg id ${row.borgId})`);
    });

  repo
    .command('list')
    .description('list repositories')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listRepositories(ctx.deps());
      if (opts.json) return ctx.printJson(rows);
      ctx.print(rows.length ? table(['NAME', 'PATH', 'ENCRYPTION', 'HOST', 'ARCHIVES'], rows.map((r) => [r.name, r.path, r.encryption, r.storageHost, r.stats?.archives])) : 'no repositories yet (borgcube repo add NAME --path PATH)');
    });

  repo
    .command('show')
    .description('show one repository')
    .argument('<name>', 'repository name')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const r = await getRepository(ctx.deps(), name);
      const lastCheck = (await listRepositoryChecks(ctx.deps(), name, 1))[0] ?? null;
      if (opts.json) return ctx.printJson({ ...r, lastCheck, backupLimit: effectiveBackupLimit(ctx.deps(), r) });
      ctx.print(showRepository(r, lastCheck, effectiveBackupLimit(ctx.deps(), r)));
    });

  repo
    .command('set')
    .description("change a repository's settings")
    .argument('<name>', 'repository name')
    .requiredOption('--max-backups <n>', 'backups that may run into it at once (more wait as queued), or "default" for the server default (BORGCUBE_MAX_BACKUPS_PER_REPOSITORY)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { maxBackups: string; json?: boolean }) => {
      const r = await updateRepository(ctx.deps(), name, { maxConcurrentBackups: parseMaxBackups(opts.maxBackups) });
      if (opts.json) return ctx.printJson(r);
      const l = effectiveBackupLimit(ctx.deps(), r);
      ctx.print(`repository ${r.name}: at most ${l.limit} backups at once${l.source === 'default' ? ' (the server default)' : ''}`);
    });

  repo
    .command('repair')
    .description('run `borg check --repair` on a damaged repository (take a copy of its folder first: a repair can drop what it cannot fix); then check it again')
    .argument('<name>', 'repository name')
    .requiredOption('--confirm <name>', 'the repository name again: a repair is never started by accident')
    .option('--verify-data', 'also read and verify every chunk (slow)')
    .action(async (name: string, opts: { confirm: string; verifyData?: boolean }) => {
      if (opts.confirm !== name) throw new UsageError(`--confirm must repeat the repository name (${name})`);
      requireRoot('repo repair');
      const r = await repairRepository(ctx.deps(), name, { verifyData: Boolean(opts.verifyData), actor: cliActor() }, {
        onStdout: (c) => ctx.io.stdout.write(c),
        onStderr: (c) => ctx.io.stderr.write(c),
      });
      const show = (n: string) => JSON.stringify(Buffer.from(n, 'latin1').toString('utf8'));
      if (r.changed.length) ctx.print(`the repair rewrote ${r.changed.length} archive(s): ${r.changed.map((c) => show(c.name)).join(', ')}; re-signed with the repository's key: ${r.resigned.length}`);
      if (r.untouchedBadTam.length) ctx.print(`warning: archive(s) whose signature does not verify although the repair did not rewrite them (left as they are; delete them or restore them from a copy): ${r.untouchedBadTam.map(show).join(', ')}`);
      if (r.code === 0 || r.code === 1) {
        ctx.print(`dropped the server's caches of the old archives (${r.droppedFilesCaches} client files cache(s), the chunk indexes): each client's next backup reads its files again and uploads what the repair lost`);
        ctx.print(`repair of ${name} finished; run a check now (console: Check now, or \`borgcube policy check POLICY\`) to confirm it and resolve the alert`);
      }
      ctx.exitCode = r.code;
    });
}

function showRepository(r: RepositoryView, check: RepositoryCheck | null, limit: ReturnType<typeof effectiveBackupLimit>): string {
  const lines: Array<[string, string]> = [
    ['name', r.name],
    ['path', r.path],
    ['storage host', r.storageHost],
    ['encryption', r.encryption],
    ['borg id', r.borgId],
    ['created', r.createdAt.toISOString()],
    ['max backups', `${limit.limit}${limit.source === 'default' ? ' (server default)' : ''}`],
  ];
  if (r.stats) {
    lines.push(['archives', String(r.stats.archives)], ['original size', String(r.stats.originalSize)], ['deduplicated size', String(r.stats.uniqueCompressedSize)]);
  }
  if (check) {
    const how = `${check.verifyData ? 'with --verify-data, ' : ''}${Math.round(check.durationMs / 1000)} s`;
    lines.push(['last check', `${check.result} at ${check.finishedAt.toISOString()} (${how})`]);
    if (check.errorCount) lines.push(['check problems', `${check.errorCount}; first: ${check.errors[0] ?? '-'}`]);
  } else lines.push(['last check', 'never']);
  return table(['FIELD', 'VALUE'], lines).split('\n').slice(1).join('\n');
}
