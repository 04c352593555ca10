// Bundles web/graphiql.jsx (GraphiQL, React, graphql-ws) with esbuild into content-hashed
// files in runql/graphiql/static/, each with a gzipped copy, and writes manifest.json naming
// them. `make graphiql` runs it; `make run` and `make test` depend on it.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'runql', 'graphiql', 'static');

const result = await build({
  entryPoints: { graphiql: join(root, 'web', 'graphiql.jsx') },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  entryNames: '[name]-[hash]',
  outdir,
  write: false,
  logLevel: 'warning',
});

mkdirSync(outdir, { recursive: true });
for (const name of readdirSync(outdir)) {
  if (name !== '.gitignore') rmSync(join(outdir, name));
}

const manifest = {};
for (const file of result.outputFiles) {
  const name = basename(file.path);
  writeFileSync(file.path, file.contents);
  writeFileSync(`${file.path}.gz`, gzipSync(file.contents, { level: 9 }));
  manifest[name.endsWith('.css') ? 'stylesheet' : 'script'] = name;
}
if (!manifest.script || !manifest.stylesheet) {
  throw new Error(`expected one script and one stylesheet, got ${JSON.stringify(manifest)}`);
}
writeFileSync(join(outdir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`graphiql: ${manifest.script}, ${manifest.stylesheet}`);
