// Where the checkout is, for helpers that point processes at its built files (dist/).
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
