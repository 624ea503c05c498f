// `borgcube storage-host list`: the storage hosts that registered (each storage worker registers
// its own when it starts), where clients reach their sshd, whether they report in, and how many
// backups each runs at once; `storage-host set` changes that limit.
import type { Command } from 'commander';
import { effectiveHostBackupLimit, listStorageHosts, STORAGE_HOST_SILENT_AFTER_S, updateStorageHost } from '../../services/storage-hosts.js';
import { parseMaxBackups, table, type CliContext } from '../context.js';

export function registerStorageHostCommands(program: Command, ctx: CliContext) {
  const host = program.command('storage-host').description('storage hosts: each holds repositories and runs their repository service, storage worker and sshd');

  host
    .command('list')
    .description(`list storage hosts; a host silent for more than ${STORAGE_HOST_SILENT_AFTER_S} s is down and new jobs on it fail`)
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const rows = await listStorageHosts(ctx.deps());
      if (opts.json) return ctx.printJson(rows);
      ctx.print(
        rows.length
          ? table(
              ['NAME', 'STATUS', 'SSH', 'REPOSITORIES', 'MAX BACKUPS', 'LAST SEEN'],
              rows.map((h) => {
                const l = effectiveHostBackupLimit(ctx.deps(), h);
                return [h.name, h.status, `${h.sshHost}:${h.sshPort}`, h.repositories, `${l.limit}${l.source === 'default' ? ' (default)' : ''}`, h.lastSeenAt ? `${h.lastSeenAt.toISOString()} (${h.silentSeconds} s ago)` : 'never'];
              }),
            )
          : 'no storage host has registered yet (each registers when its storage worker starts)',
      );
    });

  host
    .command('set')
    .description("change a storage host's settings")
    .argument('<name>', 'storage host name (as `storage-host list` shows it)')
    .requiredOption('--max-backups <n>', 'backups that may run on the host at once (more wait as queued), or "default" for the server default (BORGCUBE_MAX_BACKUPS_PER_HOST)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, opts: { maxBackups: string; json?: boolean }) => {
      const r = await updateStorageHost(ctx.deps(), name, { maxConcurrentBackups: parseMaxBackups(opts.maxBackups) });
      if (opts.json) return ctx.printJson(r);
      const l = effectiveHostBackupLimit(ctx.deps(), r);
      ctx.print(`storage host ${r.name}: at most ${l.limit} backups at once${l.source === 'default' ? ' (the server default)' : ''}`);
    });
}
