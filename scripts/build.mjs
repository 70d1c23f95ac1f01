// Bundles the CLI into dist/ so `snapplane` starts fast without a TypeScript loader.
import { build } from 'esbuild';

await build({
  entryPoints: { snapplane: 'cli/main.ts' },
  outdir: 'dist/cli',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
});
