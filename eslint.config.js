// Lint configuration: typescript-eslint's recommended rules plus the project's own bans.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Programs run through the Executor only, as argv arrays: never a shell string.
      'no-restricted-imports': ['error', { paths: [{ name: 'node:child_process', importNames: ['exec', 'execSync'], message: 'Run programs through the Executor (argv arrays, no shell).' }] }],
    },
  },
);
