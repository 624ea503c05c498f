// Where the checkout is: the bench scripts run from dist/bench/, the stack's processes from dist/.
import { fileURLToPath } from 'node:url';

export const projectRoot = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url)).replace(/\/$/, '');
export const distPath = (rel: string) => `${projectRoot}/dist/${rel}`;
