// ESLint's and typescript-eslint's recommended rules, without type information (fast enough to run in
// every `npm test`). Unused names are errors unless they start with "_" (a destructured name dropped on
// purpose).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", "out/", "native/build/", ".stow-cache/", "test/fixtures/models/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // The few JavaScript files (bin/stow.js, this one) run on Node.
  { files: ["**/*.js"], languageOptions: { globals: { process: "readonly", console: "readonly" } } },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_" },
      ],
    },
  },
);
