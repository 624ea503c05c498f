// Structured logs (pino), one logger per process. Secrets never reach a log line: the fields
// below are redacted wherever they appear, and callers log ids, not key material.
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

const redactPaths = [
  'passphrase', '*.passphrase', 'password', '*.password', 'key', '*.key', 'keyData', '*.keyData',
  'secret', '*.secret', 'token', '*.token', 'authorization', '*.authorization', 'cookie', '*.cookie',
  'req.headers.authorization', 'req.headers.cookie',
];

export function createLogger(opts: { name: string; level?: string; destination?: number | string }): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? 'info',
    redact: { paths: redactPaths, censor: '[redacted]' },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return pino(options, pino.destination({ dest: opts.destination ?? 2, sync: false }));
}
