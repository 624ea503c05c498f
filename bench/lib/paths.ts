// The bench scripts run from dist/bench/; their own compiled helpers live beside them.
import { projectRoot } from '../../test/harness/paths.js';

export { projectRoot };
export const distPath = (rel: string) => `${projectRoot}/dist/${rel}`;
