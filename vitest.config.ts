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
    // Installs Debian's Chromium for the browser tests when a fresh machine lacks it (root only).
    globalSetup: ['test/helpers/ensure-chromium.ts'],
  },
});
