// The dashboard's linter: ESLint's recommended rules and typescript-eslint's type-aware ones
// (strict about promises: a floating promise is a swallowed error in an event handler).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "eslint.config.js"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      // An async `onclick` property handles its own errors (each one catches and toasts); an async
      // function passed where a callback's result is dropped is still an error.
      "@typescript-eslint/no-misused-promises": [
        "error",
        { checksVoidReturn: { attributes: false, properties: false } },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      eqeqeq: ["error", "smart"], // `x != null`: null or undefined, on purpose
      "no-console": "error",
    },
  },
  {
    // Plain JavaScript (the docs' screenshot script): the recommended rules, no type information.
    files: ["**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: "readonly", console: "readonly", document: "readonly" }, // node, and page.evaluate
    },
    rules: { ...tseslint.configs.disableTypeChecked.rules, "no-console": "off" },
  },
  {
    // Fakes in the unit tests are async to match the interfaces they stand in for.
    files: ["test/**/*.ts"],
    rules: { "@typescript-eslint/require-await": "off" },
  },
);
