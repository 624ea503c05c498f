// ESLint rule `layout/no-cycle`: no import cycle between our modules, type-only imports included.
// import-x/no-cycle skips type imports by design, but a type cycle still ties two modules into
// one (STYLE.md §20). Imports are read with TypeScript's pre-processor (every import, export-from
// and dynamic import) and resolved the way tsc resolves this project's `./x.js` specifiers.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import ts from 'typescript';

const importsCache = new Map();

function resolveSpecifier(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(dirname(fromFile), spec);
  const candidates = spec.endsWith('.js') ? [`${base.slice(0, -3)}.ts`, base] : spec.endsWith('.mjs') ? [`${base.slice(0, -4)}.mts`, base] : [base, `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => existsSync(c) && statSync(c).isFile());
}

function importsOf(file, text) {
  const key = `${file} ${text === undefined ? statSync(file).mtimeMs : 'live'}`;
  let found = text === undefined ? importsCache.get(key) : undefined;
  if (!found) {
    const src = text ?? readFileSync(file, 'utf8');
    found = ts
      .preProcessFile(src, true, true)
      .importedFiles.map((f) => ({ spec: f.fileName, path: resolveSpecifier(file, f.fileName) }))
      .filter((i) => i.path && /\.m?ts$/.test(i.path) && !i.path.includes('/node_modules/'));
    if (text === undefined) importsCache.set(key, found);
  }
  return found;
}

/** The shortest import route from `start` back to `target`, or undefined. */
function routeBack(start, target) {
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length) {
    const file = queue.shift();
    for (const { path } of importsOf(file)) {
      if (path === target) {
        const route = [file];
        for (let p = previous.get(file); p; p = previous.get(p)) route.unshift(p);
        return route;
      }
      if (!previous.has(path)) {
        previous.set(path, file);
        queue.push(path);
      }
    }
  }
  return undefined;
}

export const noCycle = {
  meta: { type: 'problem', docs: { description: 'forbid import cycles, type-only imports included' }, schema: [] },
  create(context) {
    const file = context.physicalFilename;
    if (!/\.m?ts$/.test(file)) return {};
    const root = context.cwd;
    return {
      Program(node) {
        const seen = new Set();
        for (const { spec, path } of importsOf(file, context.sourceCode.text)) {
          if (seen.has(path) || path === file) continue;
          seen.add(path);
          const route = routeBack(path, file);
          if (!route) continue;
          const shown = [file, ...route, file].map((p) => relative(root, p)).join(' → ');
          context.report({ node, message: `import cycle through ${JSON.stringify(spec)}: ${shown}` });
        }
      },
    };
  },
};

export const layoutPlugin = { rules: { 'no-cycle': noCycle } };
