// Database dumps streamed through borg on the client (issue 24 point 2), as parts of run.sh, so
// that they run detached with borg and a worker restart re-attaches to them (run-script.ts).
//
// Backup: borg 1.2's --content-from-command stores ONE item made of the output of the command
// that all its path arguments form (archiver.py do_create, `if args.content_from_command:` runs
// `subprocess.Popen(args.paths, …)` and `fso.process_pipe(path=args.stdin_name, …)`): no files
// beside it, no second dump. So each dump gets a named pipe (FIFO) in the job folder's `dumps/`
// staging folder, and borg runs there with --read-special and the FIFOs' relative paths (e.g.
// `pgsql/app.sql`) first among its paths: make_path_safe (helpers/fs.py) stores a relative path
// as given, and --read-special makes _process_any read a FIFO's content (process_file with
// flags_special, a blocking open) instead of storing a FIFO item. A writer per dump opens its
// FIFO (which waits until borg reaches it), runs the dump tool into it and, should the tool fail,
// stops borg with SIGTERM *before* closing the FIFO: borg never sees the end of a truncated dump,
// raises SigTerm, rolls back and commits nothing, and the proxy drops the session.
//
// Restore: `borg extract --stdout` of one dump entry into a FIFO a load command reads, in a
// database the job creates (and drops again when anything fails); a failed extract stops the
// loader before it could see the end of its input and commit a part.
import { posix } from 'node:path';
import type { DumpRestore, DumpSpec } from '../../db/schema.js';
import { shellCommand, shellQuote } from '../../infra/shell-quote.js';
import { dumpEntry } from '../../services/dumps.js';
import type { ScriptParts } from './run-script.js';

/** The dump tools' stderr kept per dump (its end: the error is at the end). */
const MAX_TOOL_STDERR = 16 * 1024;
/** Lines of a tool's stderr copied into the job's log. */
const MAX_TOOL_LINES = 40;

/** The staging folder of the FIFOs, in the job folder; borg create runs in it. */
export const DUMPS_DIR = 'dumps';

interface Conn {
  host?: string;
  port?: number;
  user?: string;
  sudoUser?: string;
}

const sudo = (c: Conn) => (c.sudoUser ? ['sudo', '-n', '-u', c.sudoUser, '--'] : []);
const pgConn = (c: Conn) => [...(c.host ? ['-h', c.host] : []), ...(c.port ? ['-p', String(c.port)] : []), ...(c.user ? ['-U', c.user] : [])];
// --defaults-file must come first (mysql reads it before any other option).
const myConn = (c: Conn & { defaultsFile?: string }) => [
  ...(c.defaultsFile ? [`--defaults-file=${c.defaultsFile}`] : []),
  ...(c.host ? ['-h', c.host] : []),
  ...(c.port ? ['-P', String(c.port)] : []),
  ...(c.user ? ['-u', c.user] : []),
];

/**
 * The dump tool's argv; its stdout is the entry's content. `-w`: never ask for a password (the
 * client's ~/.pgpass or peer authentication decide), `sqlite3 -readonly`: a missing file is an
 * error rather than a new empty database.
 */
export function dumpArgv(d: DumpSpec): string[] {
  switch (d.kind) {
    case 'postgresql':
      if (d.all) return [...sudo(d), 'pg_dumpall', '-w', ...pgConn(d)];
      return [...sudo(d), 'pg_dump', '-w', ...pgConn(d), ...(d.format === 'custom' ? ['--format=custom'] : []), '--', d.database ?? ''];
    case 'mysql':
      return [...sudo(d), 'mysqldump', ...myConn(d), '--single-transaction', d.database];
    case 'sqlite':
      return ['sqlite3', '-readonly', '-bail', d.path, '.dump'];
  }
}

/** What the load side of a dump restore runs: create the database, load it, drop it after a failure. */
export interface LoadCommands {
  /** Creates the new database; fails when it exists. */
  create?: string[];
  /** Refuses the restore (exit non-zero) when the target exists (SQLite: a file is created by the load). */
  absent?: string;
  load: string[];
  drop: string[];
}

export function loadCommands(r: DumpRestore): LoadCommands {
  switch (r.kind) {
    case 'postgresql': {
      const load =
        r.format === 'custom'
          ? ['pg_restore', '-w', ...pgConn(r), '--single-transaction', '--exit-on-error', '-d', r.into]
          : ['psql', '-X', '-q', '-w', ...pgConn(r), '--single-transaction', '-v', 'ON_ERROR_STOP=1', '-d', r.into];
      return {
        create: [...sudo(r), 'createdb', '-w', ...pgConn(r), '--', r.into],
        load: [...sudo(r), ...load],
        drop: [...sudo(r), 'dropdb', '-w', ...pgConn(r), '--if-exists', '--', r.into],
      };
    }
    case 'mysql':
      return {
        create: [...sudo(r), 'mysqladmin', ...myConn(r), 'create', r.into],
        load: [...sudo(r), 'mysql', ...myConn(r), '--batch', r.into],
        drop: [...sudo(r), 'mysqladmin', ...myConn(r), '--force', 'drop', r.into],
      };
    case 'sqlite':
      return { absent: r.into, load: ['sqlite3', '-bail', r.into], drop: ['rm', '-f', '--', r.into] };
  }
}

/** Writes rc (2) and ends run.sh before borg started: the activity reads why from the marker. */
const endBeforeBorg = 'echo 2 > rc.tmp && mv rc.tmp rc; exit 0';

/**
 * run.sh's parts for a backup with dumps: FIFOs made before borg starts, a writer per dump started
 * after it (it needs borg's pid to stop it), writers borg never reached stopped after it ended.
 * Files: dump-setup.err; per dump N (1-based) dump-N.err (the tool's stderr, its end), dump-N.rc,
 * and dump-N.failed when it failed.
 */
export function backupDumpParts(dumps: DumpSpec[]): ScriptParts {
  const entries = dumps.map(dumpEntry);
  const fifos = entries.map((e) => posix.join(DUMPS_DIR, e));
  const dirs = [...new Set(fifos.map((f) => posix.dirname(f)))];
  const before = [
    // A retried run (borg failed in a way worth retrying) starts in the same job folder: the
    // earlier attempt's FIFOs and outcome files go first, or mkfifo would fail on them.
    `rm -rf -- ${shellQuote(DUMPS_DIR)} dump-setup.err dump-setup.failed dump-*.rc dump-*.err dump-*.failed`,
    `{ mkdir -p ${dirs.map(shellQuote).join(' ')} && mkfifo ${fifos.map(shellQuote).join(' ')}; } 2> dump-setup.err || { echo setup > dump-setup.failed; ${endBeforeBorg}; }`,
  ];
  const started = dumps.flatMap((d, i) => {
    const n = i + 1;
    return [
      // The open waits until borg opens the FIFO to read it. The tool writes into fd 3, its stderr
      // goes through tail (bounded); the subshell keeps fd 3 open until borg is gone on failure.
      `( exec 3> ${shellQuote(fifos[i]!)}`,
      `  { ${shellCommand(dumpArgv(d))} 2>&1 >&3 3>&- < /dev/null; echo $? > dump-${n}.rc; } | tail -c ${MAX_TOOL_STDERR} > dump-${n}.err 3>&-`,
      `  read -r r < dump-${n}.rc 2> /dev/null || r=unknown; [ "$r" = 0 ] && exit 0`,
      `  echo "$r" > dump-${n}.failed`,
      '  kill -TERM "$bp" 2> /dev/null; i=0; while alive "$bp" "$bs" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
      '  while alive "$bp" "$bs"; do kill -KILL "$bp" 2> /dev/null; sleep 0.1; done',
      `  exit 1 ) < /dev/null 9>&- &`,
      `w${n}=$!`,
    ];
  });
  // A writer still waiting when borg is gone waits for a reader that will never come.
  const ended = [`for w in ${dumps.map((_, i) => `$w${i + 1}`).join(' ')}; do kill -TERM "$w" 2> /dev/null; done`];
  return { before, started, ended };
}

/** The job folder's script that removes what a dump restore created (see restoreDumpParts). */
export const UNDO_SCRIPT = 'undo.sh';

/**
 * undo.sh: drops the database (removes the SQLite file) the restore created, and prints one line
 * saying so or why not. The drop is retried for ten seconds: a loader just stopped may still hold
 * its connection, and PostgreSQL refuses to drop a database someone is connected to (dropdb
 * --force needs PostgreSQL 13).
 */
export function undoScript(r: DumpRestore): string {
  const c = loadCommands(r);
  const what = r.kind === 'sqlite' ? `the SQLite file ${JSON.stringify(r.into)}` : `database ${JSON.stringify(r.into)}`;
  const done = `${r.kind === 'sqlite' ? 'removed' : 'dropped'} ${what} on the client: the restore that created it did not finish`;
  return [
    '#!/bin/sh',
    `# BorgCube: removes ${what}, which this job's restore created and did not finish.`,
    'i=0',
    `until err=$(${shellCommand(c.drop)} 2>&1 > /dev/null < /dev/null); do`,
    `  i=$((i+1)); if [ $i -ge 20 ]; then printf '%s: %s\\n' ${shellQuote(`${what} on the client, created by a restore that did not finish, could not be removed; remove it by hand`)} "$(printf '%s' "$err" | tail -n 2 | tr '\\n' ' ')"; exit 1; fi`,
    '  sleep 0.5',
    'done',
    `printf '%s\\n' ${shellQuote(done)}`,
    '',
  ].join('\n');
}

/**
 * run.sh's parts for a dump restore: borg extract --stdout writes into load.fifo, which the load
 * command reads. Files: load.failed ("exists", "create RC", "load RC"), load.err (the failing
 * tool's stderr, its end), load.pid, load.rc. Once the database exists, undo.sh (undoScript) is
 * in the job folder until the load succeeded: run.sh runs it after a failure, and the job's
 * cleanup (job-folder.ts remove) runs what is left of it when run.sh was stopped (a cancel) or
 * died before it could.
 */
export function restoreDumpParts(r: DumpRestore): ScriptParts {
  const c = loadCommands(r);
  const fail = (what: string) => `{ echo ${what} > load.failed; ${endBeforeBorg}; }`;
  const before = [
    `rm -f load.fifo; mkfifo load.fifo 2> load.err || ${fail('setup')}`,
    // A run started again in the same job folder first removes what an earlier one left.
    `if [ -f ${UNDO_SCRIPT} ]; then sh ${UNDO_SCRIPT} > /dev/null 2>&1 9>&- && rm -f ${UNDO_SCRIPT}; fi`,
    ...(c.absent ? [`if [ -e ${shellQuote(c.absent)} ] || [ -L ${shellQuote(c.absent)} ]; then ${fail('exists')}; fi`] : []),
    ...(c.create ? [`${shellCommand(c.create)} > /dev/null 2> load.err < /dev/null 9>&- || ${fail('"create $?"')}`] : []),
    // Only now: what existed before the job (createdb failed, the file was there) is never removed.
    `printf '%s' ${shellQuote(undoScript(r))} > ${UNDO_SCRIPT}`,
    // The loader opens the FIFO in its own process (before exec), so the open below never waits
    // for a reader that cannot come.
    `{ ${shellCommand(c.load)} 2>&1 > /dev/null < load.fifo 9>&- & echo $! > load.pid; wait $!; echo $? > load.rc; } | tail -c ${MAX_TOOL_STDERR} > load.err &`,
    'lg=$!',
    'exec 4> load.fifo',
  ];
  const ended = [
    'read -r lp < load.pid 2> /dev/null',
    // borg failed while the loader still runs: stop it before it could read the end of a part.
    'killed=; if [ "$rc" != 0 ] && [ -n "$lp" ] && started "$lp" > /dev/null; then kill -TERM "$lp" 2> /dev/null; killed=1; fi',
    'exec 4>&-',
    'wait "$lg"',
    'read -r lrc < load.rc 2> /dev/null || lrc=unknown',
    '[ "$lrc" != 0 ] && [ -z "$killed" ] && echo "load $lrc" > load.failed',
    // A drop that failed leaves undo.sh for the cleanup, which tries again and logs the outcome.
    `if [ "$rc" != 0 ] || [ "$lrc" != 0 ]; then sh ${UNDO_SCRIPT} > /dev/null 2>&1 && rm -f ${UNDO_SCRIPT}; else rm -f ${UNDO_SCRIPT}; fi`,
  ];
  return { before, stdout: '&4', ended };
}

/** Reads a file of the job folder (its first bytes), undefined when absent. */
export type ReadJobFile = (name: string, max: number) => Promise<string | undefined>;

/** What a finished run's dump files say: lines for the job's log, and the failure if any. */
export interface ToolOutcome {
  lines: Array<{ message: string; level: 'INFO' | 'WARNING' | 'ERROR' }>;
  failure?: string;
}

function stderrLines(text: string | undefined): string[] {
  return (text ?? '')
    .split('\n')
    // The shell's own messages ("…/run.sh: 31: sudo: not found") without the job folder's path.
    .map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ' ').replace(/^\S*\/run\.sh: \d+: /, '').trimEnd())
    .filter((l) => l.trim() !== '');
}

/**
 * The tool's own words, one line: its last line that says what went wrong (tools print context
 * after it, e.g. sqlite3's "^--- error here"), else its last line.
 */
function summary(lines: string[]): string {
  const telling = lines.filter((l) => !/^\s*\^/.test(l) && /error|fatal|denied|not found|unable|cannot|could not|no such|failed/i.test(l));
  const s = (telling.at(-1) ?? lines.at(-1) ?? '').replace(/\s+/g, ' ').trim();
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
}

const toolName = (argv: string[]) => (argv[0] === 'sudo' ? argv[5] : argv[0]) ?? 'the tool';

function exitText(tool: string, rc: string, lines: string[]): string {
  // sh says which command it did not find: sudo, or the tool behind it.
  const missing = lines.map((l) => /^(\S+): not found$/.exec(l)?.[1]).find(Boolean) ?? tool;
  if (rc === '127') return `${missing} is not installed on the client (or not on the login account's PATH)`;
  return `${tool} exited with ${rc}${lines.length ? `: ${summary(lines)}` : ''}`;
}

/** After a backup with dumps: the tools' stderr for the log, and which dump failed. */
export async function backupDumpOutcome(dumps: DumpSpec[], read: ReadJobFile, borgRc: number): Promise<ToolOutcome> {
  const out: ToolOutcome = { lines: [] };
  const setup = await read('dump-setup.failed', 64);
  if (setup !== undefined) {
    const err = stderrLines(await read('dump-setup.err', 4096));
    out.failure = `the dumps' named pipes could not be made on the client${err.length ? `: ${summary(err)}` : ''}`;
    return out;
  }
  for (const [i, d] of dumps.entries()) {
    const n = i + 1;
    const entry = dumpEntry(d);
    const tool = toolName(dumpArgv(d));
    const lines = stderrLines(await read(`dump-${n}.err`, MAX_TOOL_STDERR));
    const failed = (await read(`dump-${n}.failed`, 64))?.trim();
    for (const l of lines.slice(-MAX_TOOL_LINES)) out.lines.push({ message: `${entry}: ${tool}: ${l}`, level: failed ? 'ERROR' : 'WARNING' });
    if (failed !== undefined) out.failure ??= `the dump ${entry} failed: ${exitText(tool, failed, lines)}`;
    // borg ended well without having read this FIFO to its end (it could not open it): the
    // archive lacks the dump, and the job must not pass for a good backup.
    else if (borgRc <= 1 && (await read(`dump-${n}.rc`, 64))?.trim() !== '0') out.failure ??= `the dump ${entry} was not read by borg: the archive does not hold it`;
  }
  return out;
}

/** After a dump restore: the load side's failure, if any. */
export async function restoreDumpOutcome(r: DumpRestore, read: ReadJobFile): Promise<ToolOutcome> {
  const failed = (await read('load.failed', 64))?.trim();
  if (failed === undefined) return { lines: [] };
  const c = loadCommands(r);
  const lines = stderrLines(await read('load.err', MAX_TOOL_STDERR));
  const what = r.kind === 'sqlite' ? `the SQLite file ${r.into}` : `database ${r.into}`;
  const out: ToolOutcome = { lines: lines.slice(-MAX_TOOL_LINES).map((l) => ({ message: `${r.entry}: ${l}`, level: 'ERROR' as const })) };
  const [step, rc = ''] = failed.split(' ');
  if (step === 'exists') out.failure = `${what} already exists on the client: a dump is restored only into a new one`;
  else if (step === 'create') out.failure = `creating ${what} failed: ${exitText(toolName(c.create ?? []), rc, lines)}`;
  else if (step === 'setup') out.failure = `the restore's named pipe could not be made on the client: ${summary(lines)}`;
  else out.failure = `loading ${r.entry} into ${what} failed: ${exitText(toolName(c.load), rc, lines)}`;
  return out;
}
