import { defineConfig } from 'vitest/config';

// Long soaks, run by `npm run soak` (not part of `npm test`).
export default defineConfig({
  test: {
    include: ['test/soak/**/*.test.ts'],
    testTimeout: 0,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
