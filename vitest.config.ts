import { defineConfig } from "vitest/config";

// Tests compile C++ and train small models: generous timeouts, and files run one at a time because
// the machine has two cores and every build or training run uses both.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    // Every graph a pass makes is verified (plan/pipeline.ts), in the tests and the CLI runs they start.
    env: { STOW_VERIFY_PASSES: "1" },
  },
});
