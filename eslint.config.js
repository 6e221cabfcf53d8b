// Type-aware lint: the rules here catch real bugs (floating promises, any, cycles).
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import importX from "eslint-plugin-import-x";

export default tseslint.config(
  {
    ignores: ["**/dist/**", "**/node_modules/**", "shared/rpc/src/gen/**", "**/*.js", "**/*.mjs", "**/*.cjs", "vitest.config.ts"],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "import-x": importX },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "import-x/no-cycle": "error",
      "import-x/no-relative-packages": "error",
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["@vecraft/*/src/*", "@vecraft/*/dist/*"], message: "Import a package through its public index." }] },
      ],
      "no-empty": ["error", { allowEmptyCatch: false }],
    },
  },
  {
    // Services and shared libraries log through the injected structured logger.
    files: ["services/*/src/**/*.ts", "shared/*/src/**/*.ts"],
    rules: { "no-console": "error" },
  },
  {
    files: ["**/test/**/*.ts", "bench/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/unbound-method": "off",
    },
  },
);
