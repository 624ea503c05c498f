// Commands about the server itself: the SSH key clients authorize, and borg with a repository's
// real key for what BorgCube's own commands do not cover.
import type { Command } from 'commander';
import { readServerPublicKey } from '../../infra/server-key.js';
import { runAdminBorg } from '../../services/repositories.js';
import { UsageError, type CliContext } from '../context.js';

export function registerServerCommands(program: Command, ctx: CliContext) {
  program
    .command('server-key')
    .description("print the public key a client must authorize (append it to the client account's ~/.ssh/authorized_keys)")
    .action(() => {
      ctx.print(readServerPublicKey(ctx.config().ssh.keyPath));
    });

  program
    .command('borg')
    .description('run borg on the server against a repository with its real key, e.g. `borgcube borg REPO -- list` or `-- extract ::ARCHIVE path`')
    .argument('<repo>', 'repository name')
    .argument('[args...]', 'borg arguments, after --; the repository is BORG_REPO, so use ::ARCHIVE')
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (repo: string, rawArgs: string[]) => {
      const args = rawArgs[0] === '--' ? rawArgs.slice(1) : rawArgs;
      if (args.length === 0) throw new UsageError('give borg arguments after --, e.g. borgcube borg REPO -- list');
      const code = await runAdminBorg(ctx.deps(), repo, args, {
        onStdout: (c) => ctx.io.stdout.write(c),
        onStderr: (c) => ctx.io.stderr.write(c),
        cwd: process.cwd(),
      });
      ctx.exitCode = code;
    });
}
