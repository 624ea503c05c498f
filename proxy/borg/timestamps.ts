// Borg's manifest timestamps: UTC, `YYYY-mm-ddTHH:MM:SS.ffffff` (ISO_FORMAT, always 6 digits).
// The repository service stamps the real manifest and new archive entries with its own clock.

/** Microseconds since the epoch of a borg timestamp. */
export function parseBorgTime(s: string): number {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?$/.exec(s);
  if (!m) throw new Error(`not a borg timestamp: ${s}`);
  return Date.parse(`${m[1]}Z`) * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

export function formatBorgTime(us: number): string {
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}`;
}

export function nowBorgTime(now = Date.now()): string {
  return formatBorgTime(now * 1000);
}

/** `max(previous + 1µs, now)`, like Manifest.write, but with the server's clock. */
export function nextTimestamp(prev: string, now = Date.now()): string {
  return formatBorgTime(Math.max(parseBorgTime(prev) + 1, now * 1000));
}
