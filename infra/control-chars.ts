// Text that came from a client (a borg's output, a version string) on its way into PostgreSQL and
// onto screens. PostgreSQL's text type refuses NUL (0x00) outright, and ESC/CSI sequences would
// drive an operator's terminal; both are made visible instead of being dropped.

/** C0 controls except tab and newline, DEL, and the C1 controls (0x9b is a one-byte CSI on some terminals). */
const controls = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

/**
 * A log line as BorgCube stores and shows it: every control character but tab and newline
 * becomes `\xNN` (NUL → `\x00`, ESC → `\x1b`); everything else is kept as it was.
 */
export function escapeControlChars(s: string): string {
  return s.replace(controls, hex);
}

/** Only what PostgreSQL's text type refuses (NUL → `\x00`), for fields whose exact text is shown elsewhere as data. */
export function escapeNul(s: string): string {
  return s.includes('\u0000') ? s.replace(/\u0000/g, '\\x00') : s;
}
