// Type-aware lint (typescript-eslint recommended-type-checked + strict-type-checked) over every
// TypeScript file tsconfig.json covers: apps, packages, tests, bench.
import eslint from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Tests and their support code (not bench: it is held to the production rules). */
const testFiles = ['**/*.test.ts', 'tests/**/*.ts', '**/test-support.ts', '**/testing.ts', '**/testing/**/*.ts'];

export default defineConfig(
  { ignores: ['**/node_modules/', '**/dist/', '**/coverage/', '.data/', 'migrations/', 'infra/'] },
  {
    files: ['**/*.ts'],
    extends: [eslint.configs.recommended, tseslint.configs.recommendedTypeChecked, tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Numbers read fine in messages and keys; objects, nullish, booleans and any stay refused.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowNumber: true, allowAny: false, allowBoolean: false, allowNullish: false, allowRegExp: false, allowNever: false },
      ],
      // `() => logger.warn(...)` / `(done) => server.close(done)` callbacks are the house style.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // `async` without `await` is deliberate: it meets a Promise-returning interface (fastify
      // handlers, processors) and turns a synchronous throw into a rejection.
      '@typescript-eslint/require-await': 'off',
      // `const { id: _id, ...rest } = row` is how a key is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    files: testFiles,
    rules: {
      // jest's asymmetric matchers (expect.any, objectContaining) and inject().json() / JSON.parse
      // are typed `any`; the assertion that receives them is the check.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      // A test that dereferences what it just created fails loudly if it is missing.
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
);
