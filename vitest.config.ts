import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  test: {
    include: ['test/**/*.test.{ts,tsx}'],
    exclude: ['test/soak/**', 'node_modules/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Vitest 4 runs one file at a time on a 2-core machine (CPUs - 1). Most of our files wait on child processes,
    // sockets and fsync more than they compute: two at once took the suite from 1051 s to 692 s here (2026-12-02).
    maxWorkers: 2,
    // Installs Debian's Chromium for the browser tests when a fresh machine lacks it (root only).
    globalSetup: ['test/helpers/ensure-chromium.ts'],
  },
});
