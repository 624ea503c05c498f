// `borgcube storage-host list`: the storage hosts that registered (each storage worker registers
// its own when it starts), where clients reach their sshd, and whether they report in.
import type { Command } from 'commander';
import { listStorageHosts, STORAGE_HOST_SILENT_AFTER_S } from '../../services/storage-hosts.js';
import { table, type CliContext } from '../context.js';

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
              ['NAME', 'STATUS', 'SSH', 'REPOSITORIES', 'LAST SEEN'],
              rows.map((h) => [h.name, h.status, `${h.sshHost}:${h.sshPort}`, h.repositories, h.lastSeenAt ? `${h.lastSeenAt.toISOString()} (${h.silentSeconds} s ago)` : 'never']),
            )
          : 'no storage host has registered yet (each registers when its storage worker starts)',
      );
    });
}
