// Builds everything `npm start`, the CLI and the console need into dist/:
//   dist/cli        the CLI bundle (esbuild), including `snapplane console` (the web host)
//   dist/electron   Electron main, its engine worker (ESM) and the preload (CommonJS: sandboxed preloads cannot be ES modules)
//   dist/renderer   the React renderer (Vite)
// `node scripts/build.mjs --no-renderer` skips the Vite build (the CLI tests do not need it).
import { build } from 'esbuild';

const skipRenderer = process.argv.includes('--no-renderer');

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

// Electron main and the engine worker: ESM; electron and the native modules stay external, the rest is bundled so the
// packaged app's worker loads without resolving packages.
await build({
  entryPoints: { main: 'electron/main.ts', 'engine-worker': 'electron/engine-worker.ts' },
  outdir: 'dist/electron',
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  external: ['electron', 'lz4-napi', '@node-rs/xxhash', '@node-rs/crc32'],
  banner: { js: "import { createRequire as __snapplaneRequire } from 'node:module'; const require = __snapplaneRequire(import.meta.url);" },
  logLevel: 'warning',
});
await build({
  entryPoints: { preload: 'electron/preload.ts' },
  outdir: 'dist/electron',
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['electron'],
  logLevel: 'warning',
});

if (!skipRenderer) {
  const { build: viteBuild } = await import('vite');
  const { default: react } = await import('@vitejs/plugin-react');
  await viteBuild({
    configFile: false,
    root: 'renderer',
    base: './',
    publicDir: '../assets',
    logLevel: 'warn',
    plugins: [react()],
    build: { outDir: '../dist/renderer', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 2048 },
  });
}
