// `borgcube archives CLIENT` and `borgcube ls ARCHIVE [PATH]`: a client's archives, and an
// archive's contents read on the server with the real key (no client involved).
import type { Command } from 'commander';
import { browseArchive, displayPath, entryJson, findInArchive, modeString, pathArg, statArchivePath, type CatalogItem } from '../../services/archive-browse.js';
import { listClientArchives, type ArchiveDetail } from '../../services/archives.js';
import { table, UsageError, type CliContext } from '../context.js';

const mtimeText = (ns: bigint) => new Date(Number(ns / 1_000_000n)).toISOString().replace('T', ' ').slice(0, 19);

/** One `ls -l`-like line per entry: mode, owner, group, size, mtime, name (`-> target`). */
export function lsLines(entries: CatalogItem[], fullPath: boolean): string[] {
  const rows = entries.map((e) => {
    const name = displayPath(fullPath ? e.path : e.name) + (e.type === 'dir' ? '/' : '');
    const link = e.type === 'symlink' && e.target ? ` -> ${displayPath(e.target)}` : e.type === 'hardlink' && e.target ? ` link to ${displayPath(e.target)}` : '';
    const owner = e.implicit ? '-' : e.user ? displayPath(e.user) : String(e.uid);
    const group = e.implicit ? '-' : e.group ? displayPath(e.group) : String(e.gid);
    return [modeString(e.type, e.mode), owner, group, String(e.size), e.implicit ? '-' : mtimeText(e.mtime), `${name}${link}`];
  });
  const widths = [0, 1, 2, 3].map((i) => Math.max(0, ...rows.map((r) => r[i]!.length)));
  return rows.map((r) => [r[0], r[1]!.padEnd(widths[1]!), r[2]!.padEnd(widths[2]!), r[3]!.padStart(widths[3]!), r[4], r[5]].join(' '));
}

const archiveRow = (a: ArchiveDetail) => [a.name, a.time.toISOString(), a.originalSize, a.deduplicatedSize, a.nfiles, a.repositoryName, a.policyName, a.jobId];

export function registerArchiveCommands(program: Command, ctx: CliContext) {
  program
    .command('archives')
    .description("list a client's archives (newest first)")
    .argument('<client>', 'client name')
    .option('--repo <name>', 'only archives in this repository')
    .option('--json', 'print JSON')
    .action(async (client: string, opts: { repo?: string; json?: boolean }) => {
      const rows = await listClientArchives(ctx.deps(), client, opts.repo);
      if (opts.json) return ctx.printJson(rows);
      ctx.print(rows.length ? table(['NAME', 'TIME', 'ORIGINAL', 'DEDUPLICATED', 'FILES', 'REPOSITORY', 'POLICY', 'JOB'], rows.map(archiveRow)) : `client ${client} has no archives yet`);
    });

  program
    .command('ls')
    .description("list a directory of an archive (read on the server; no client involved), or search it with --find")
    .argument('<archive>', 'archive id or name')
    .argument('[path]', 'directory (or file) in the archive; the top level when left out')
    .option('--path-b64 <base64>', 'the path as base64 of its bytes (names that are not UTF-8)')
    .option('--find <pattern>', 'search the whole archive: a glob (*, ?, ** across directories) or a substring')
    .option('--repo <name>', 'the repository, when archives of that name exist in several')
    .option('--offset <n>', 'skip this many entries of the directory', '0')
    .option('--limit <n>', 'entries to show (directory page, or search results)', '1000')
    .option('--json', 'print JSON')
    .action(async (archive: string, path: string | undefined, opts: { pathB64?: string; find?: string; repo?: string; offset: string; limit: string; json?: boolean }) => {
      const arg = { archive, repository: opts.repo };
      const limit = Number(opts.limit);
      const offset = Number(opts.offset);
      if (!Number.isInteger(limit) || !Number.isInteger(offset)) throw new UsageError('--limit and --offset take whole numbers');
      if (opts.find !== undefined) {
        if (path !== undefined || opts.pathB64 !== undefined) throw new UsageError('--find searches the whole archive: give no path with it');
        const r = await findInArchive(ctx.deps(), arg, opts.find, limit);
        if (opts.json) return ctx.printJson({ archive: r.archive.name, entries: r.entries.map(entryJson), truncated: r.truncated });
        ctx.print([...lsLines(r.entries, true), ...(r.truncated ? [`(more than ${limit} matches; narrow the pattern or raise --limit)`] : [])].join('\n') || 'no matches');
        return;
      }
      const p = pathArg({ path, pathB64: opts.pathB64 });
      if (p.length) {
        const { entry } = await statArchivePath(ctx.deps(), arg, p);
        if (entry.type !== 'dir') {
          if (opts.json) return ctx.printJson({ entry: entryJson(entry) });
          return ctx.print(lsLines([entry], true).join('\n'));
        }
      }
      const page = await browseArchive(ctx.deps(), arg, p, { offset, limit });
      if (opts.json) return ctx.printJson({ archive: page.archive.name, path: displayPath(p), total: page.total, offset, entries: page.entries.map(entryJson) });
      const more = page.total > offset + page.entries.length ? [`(${page.total - offset - page.entries.length} more; --offset ${offset + page.entries.length})`] : [];
      ctx.print([...lsLines(page.entries, false), ...more].join('\n') || '(empty directory)');
    });
}
