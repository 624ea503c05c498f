// The one audited helper for the rare places where a remote shell is unavoidable (an SSH exec
// request is a single string that the client's login shell parses). Every argument is wrapped in
// single quotes; a single quote inside becomes '\''. NUL cannot be passed through a shell at all.
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error('argument contains a NUL byte');
  if (/^[A-Za-z0-9_\-./=:@%+,]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shellCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty command');
  return argv.map(shellQuote).join(' ');
}
