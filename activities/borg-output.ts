// Parsing what `borg create --log-json --progress` prints on the client (BORG_PROTOCOL.md §8).
// Everything here is untrusted data from the client: each line is validated with zod, lines are
// cut at a fixed length, and nothing is ever interpreted beyond these shapes.
import { z } from 'zod';
import { enospcPattern } from '../proxy/storage/api.js';

/** Longest line kept; the rest of a longer line is dropped and the line is marked truncated. */
export const MAX_LINE = 16 * 1024;
/** Longest message stored from one line. */
export const MAX_MESSAGE = 4096;

/** Splits a byte stream into lines with bounded memory, whatever the input. */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private dropping = false;

  constructor(private readonly maxLine = MAX_LINE) {}

  push(chunk: Buffer): Array<{ line: string; truncated: boolean }> {
    const out: Array<{ line: string; truncated: boolean }> = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      this.append(chunk.subarray(start, end));
      if (nl === -1) break;
      out.push({ line: Buffer.concat(this.parts).toString('utf8'), truncated: this.dropping });
      this.parts = [];
      this.size = 0;
      this.dropping = false;
      start = nl + 1;
    }
    return out;
  }

  /** What is left without a final newline. */
  flush(): Array<{ line: string; truncated: boolean }> {
    if (this.size === 0 && !this.dropping) return [];
    const l = { line: Buffer.concat(this.parts).toString('utf8'), truncated: this.dropping };
    this.parts = [];
    this.size = 0;
    this.dropping = false;
    return [l];
  }

  private append(b: Buffer) {
    if (b.length === 0) return;
    const room = this.maxLine - this.size;
    if (b.length > room) {
      this.dropping = true;
      if (room > 0) {
        this.parts.push(Buffer.from(b.subarray(0, room)));
        this.size += room;
      }
      return;
    }
    this.parts.push(Buffer.from(b));
    this.size += b.length;
  }
}

const finite = z.number().finite();
const text = z.string().transform((s) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}…` : s));

const archiveProgress = z.object({
  type: z.literal('archive_progress'),
  time: finite,
  finished: z.boolean().optional(),
  original_size: finite.nonnegative().optional(),
  compressed_size: finite.nonnegative().optional(),
  deduplicated_size: finite.nonnegative().optional(),
  nfiles: finite.nonnegative().optional(),
  path: text.optional(),
});
const progressMessage = z.object({
  type: z.enum(['progress_message', 'progress_percent']),
  time: finite.optional(),
  finished: z.boolean().optional(),
  message: text.optional(),
  msgid: z.string().max(200).optional(),
  current: finite.optional(),
  total: finite.optional(),
});
const logMessage = z.object({
  type: z.literal('log_message'),
  time: finite.optional(),
  levelname: z.string().max(20),
  name: z.string().max(200).optional(),
  message: text,
  msgid: z.string().max(200).optional(),
});
const fileStatus = z.object({ type: z.literal('file_status'), status: z.string().max(2), path: text });
const question = z.object({ type: z.string().max(64).regex(/^question_/), msgid: z.string().max(200).optional(), message: text.optional() });

export type BorgLine =
  /** `totalSize`: what `borg extract` will write in all (a restore's bytes are its originalSize). */
  | { kind: 'progress'; originalSize: number; compressedSize: number; deduplicatedSize: number; nfiles: number; path: string; time: number; totalSize?: number }
  | { kind: 'progress-finished'; time: number }
  /** One path `borg extract --list` restored: counted, not every one stored. */
  | { kind: 'listed'; path: string }
  | { kind: 'log'; level: string; type: string; msgid: string | null; message: string; time: number | null };

/**
 * One stderr line of borg → a typed event. Lines that are not JSON (a crashing borg, a shell
 * error) become plain log lines; malformed JSON records too. Never throws.
 */
export function parseBorgLine(raw: string, truncated = false): BorgLine | null {
  const line = raw.replace(/\r$/, '');
  if (line.trim() === '') return null;
  if (!truncated && line.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      json = undefined;
    }
    if (json !== undefined) {
      const p = archiveProgress.safeParse(json);
      if (p.success) {
        const v = p.data;
        if (v.finished || v.original_size === undefined) return { kind: 'progress-finished', time: v.time };
        return {
          kind: 'progress',
          originalSize: v.original_size,
          compressedSize: v.compressed_size ?? 0,
          deduplicatedSize: v.deduplicated_size ?? 0,
          nfiles: v.nfiles ?? 0,
          path: v.path ?? '',
          time: v.time,
        };
      }
      const l = logMessage.safeParse(json);
      if (l.success) return { kind: 'log', level: normLevel(l.data.levelname), type: 'log_message', msgid: l.data.msgid ?? null, message: l.data.message, time: l.data.time ?? null };
      const m = progressMessage.safeParse(json);
      if (m.success) {
        if (m.data.finished || !m.data.message) return null;
        return { kind: 'log', level: 'INFO', type: m.data.type, msgid: m.data.msgid ?? null, message: m.data.message.trim(), time: m.data.time ?? null };
      }
      const f = fileStatus.safeParse(json);
      if (f.success) return { kind: 'log', level: 'INFO', type: 'file_status', msgid: null, message: `${f.data.status} ${f.data.path}`, time: null };
      const q = question.safeParse(json);
      if (q.success) return { kind: 'log', level: 'WARNING', type: q.data.type, msgid: q.data.msgid ?? null, message: q.data.message ?? q.data.type, time: null };
    }
  }
  const message = line.length > MAX_MESSAGE ? `${line.slice(0, MAX_MESSAGE)}…` : line;
  return { kind: 'log', level: 'INFO', type: 'output', msgid: null, message: truncated ? `${message} [line truncated]` : message, time: null };
}

/**
 * What filled up, when an error line of a borg run on the server says the repository's file system
 * is full: borg's pre-commit free-space check (a prune's or compact's commit), or a write failing
 * with ENOSPC (`OSError: [Errno 28]`, e.g. the lock's roster when not one block is free).
 * `borg extract` reports a file it could not write as a WARNING (`path: write: [Errno 28] …`) and
 * goes on: pass the levels that count. Undefined for anything else.
 */
export function diskFullInLine(l: BorgLine, levels: readonly string[] = ['ERROR', 'CRITICAL']): string | undefined {
  if (l.kind !== 'log' || !levels.includes(l.level)) return undefined;
  if (l.msgid === 'Repository.InsufficientFreeSpaceError') return l.message.split('\n')[0]!.trim().replace(/\.$/, '');
  return enospcPattern.test(l.message) ? 'No space left on device' : undefined;
}

function normLevel(l: string): string {
  const u = l.toUpperCase();
  return ['DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'].includes(u) ? u : 'INFO';
}
