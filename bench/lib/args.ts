// Tiny option parser for the bench scripts: `--name value` and `--flag`.
export function parseArgs<T extends Record<string, string | number | boolean | undefined>>(defaults: T, usage: string): T {
  const out: Record<string, string | number | boolean | undefined> = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    }
    const key = a.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!a.startsWith('--') || !(key in defaults)) throw new Error(`unknown option ${a}\n${usage}`);
    const def = defaults[key];
    if (typeof def === 'boolean') out[key] = true;
    else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      if (typeof def === 'number') {
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0) throw new Error(`${a}: not a number: ${v}`);
        out[key] = n;
      } else out[key] = v;
    }
  }
  return out as T;
}
