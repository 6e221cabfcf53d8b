import { defineConfig } from "vitest/config";

// Three layers (CONVENTIONS.md): unit (pure logic and in-process RPC), integration (real
// servers and files), fault (real processes killed with SIGKILL). `pnpm test` runs all.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["shared/*/test/**/*.test.ts", "services/*/test/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "fault",
          include: ["test/fault/**/*.test.ts"],
          testTimeout: 300_000,
          hookTimeout: 60_000,
          // Fault tests start and kill real processes; one file at a time keeps 2 cores honest.
          fileParallelism: false,
        },
      },
    ],
  },
});
