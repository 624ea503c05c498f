// Where the checkout is, for helpers that point processes at its files: the harness runs from
// source under vitest and from dist/test/harness/ under the benchmarks.
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url)).replace(/\/$/, '');
