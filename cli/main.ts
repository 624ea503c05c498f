// `borgcube`, the admin CLI: a composition root over the service layer (the web API calls the
// same functions). Every command has --help; listing and showing commands take --json; success
// exits 0, anything else prints one line on stderr and exits non-zero (2 = usage, 1 = failure).
import { Command, CommanderError, Option } from 'commander';
import { z } from 'zod';
import { createCliContext, UsageError, type CliContext } from './context.js';
import { registerRepoCommands } from './commands/repo.js';
import { registerStorageHostCommands } from './commands/storage-host.js';
import { registerClientCommands } from './commands/client.js';
import { registerUserCommands } from './commands/user.js';
import { registerServerCommands } from './commands/server.js';
import { registerJobCommands } from './commands/jobs.js';
import { registerRestoreCommand } from './commands/restore.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerAlertCommands } from './commands/alert.js';
import { registerSetupCommands } from './commands/setup.js';
import { registerArchiveCommands } from './commands/archives.js';
import { registerRecoveryCommands, registerServerBackupCommands } from './commands/recovery.js';
import { ServiceError } from '../services/errors.js';
import { formatZodError } from '../services/validation.js';
import { ConfigError } from '../infra/config.js';

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('borgcube')
    .description('BorgCube: central pull-backup server on BorgBackup and Temporal')
    .configureOutput({ outputError: () => {} })
    .enablePositionalOptions()
    .exitOverride();
  program.addOption(new Option('--verbose', 'log what happens (to stderr)'));
  program.hook('preAction', (cmd) => ctx.setVerbose(Boolean(cmd.opts<{ verbose?: boolean }>().verbose)));
  registerRepoCommands(program, ctx);
  registerStorageHostCommands(program, ctx);
  registerClientCommands(program, ctx);
  registerUserCommands(program, ctx);
  registerJobCommands(program, ctx);
  registerArchiveCommands(program, ctx);
  registerRestoreCommand(program, ctx);
  registerPolicyCommands(program, ctx);
  registerAlertCommands(program, ctx);
  registerServerCommands(program, ctx);
  registerRecoveryCommands(program, ctx);
  registerServerBackupCommands(program, ctx);
  registerSetupCommands(program, ctx);
  for (const cmd of allCommands(program)) cmd.exitOverride().configureOutput({ outputError: () => {} });
  return program;
}

function allCommands(c: Command): Command[] {
  return [c, ...c.commands.flatMap(allCommands)];
}

/** Runs the CLI and returns the exit code (does not exit, so tests can call it). */
export async function main(argv: string[], io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const ctx = createCliContext(io);
  try {
    await buildProgram(ctx).parseAsync(argv, { from: 'user' });
    return ctx.exitCode ?? 0;
  } catch (err) {
    return reportError(err, io.stderr);
  } finally {
    await ctx.close();
  }
}

function reportError(err: unknown, stderr: NodeJS.WritableStream): number {
  const line = (msg: string) => stderr.write(`borgcube: ${msg.split('\n')[0]}\n`);
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    line(`${err.message.replace(/^error: /, '')} (see --help)`);
    return 2;
  }
  if (err instanceof UsageError) {
    line(err.message);
    return 2;
  }
  if (err instanceof z.ZodError) {
    line(formatZodError(err));
    return 2;
  }
  if (err instanceof ServiceError) {
    line(err.message);
    return err.kind === 'invalid' ? 2 : 1;
  }
  if (err instanceof ConfigError) {
    line(err.message);
    return 2;
  }
  const e = err as NodeJS.ErrnoException;
  if (e && (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND')) {
    line(`cannot reach a service (${e.message}); is the stack running (npm start)?`);
    return 1;
  }
  line(e instanceof Error ? e.message : String(err));
  return 1;
}
