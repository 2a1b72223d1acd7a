// End-to-end suites (`npm run test:e2e`): not part of `npm test`. Each says why it skips when
// what it needs (a container runtime, a cluster) is not there.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    root: fileURLToPath(new URL('..', import.meta.url)),
    include: ['e2e/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 600_000,
  },
});
