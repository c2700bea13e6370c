// Lint configuration: typescript-eslint's recommended rules plus the project's own bans and the
// size limits of docs/architecture.md (no file over 600 lines, no function in src/ over 80).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noShell = { name: 'node:child_process', importNames: ['exec', 'execSync'], message: 'Run programs through the Executor (argv arrays, no shell).' };
const fsBan = ['node:fs', 'node:fs/promises', 'fs', 'fs/promises'].map((name) => ({
  name,
  message: 'Connectors touch the OS only through host/ (sysfs, devices, files) and exec/.',
}));

// The layers of docs/architecture.md, top to bottom; a file may import only from its own layer and
// the layers below it (errors.ts, log.ts and options.ts are shared leaves). `import type` may point up
// (target helpers name the driver types they serve), runtime imports may not. csi/ and cli/ are both
// at the top: the csi plugin builds its runtime with cli/'s, and `brick csi` is registered in cli/main.ts.
const LAYERS = ['csi', 'cli', 'library', 'persistence', 'drivers', 'target', 'initiator', 'host', 'exec'];
const layerRules = LAYERS.map((layer, i) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    '@typescript-eslint/no-restricted-imports': ['error', {
      patterns: [{
        group: LAYERS.slice(0, i).map((l) => `**/${l}/**`),
        allowTypeImports: true,
        message: `${layer}/ sits below these layers: import only from ${LAYERS.slice(i).join(', ')} and the shared leaves errors, log and options (docs/architecture.md).`,
      }],
    }],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Programs run through the Executor only, as argv arrays: never a shell string.
      'no-restricted-imports': ['error', { paths: [noShell] }],
    },
  },
  {
    files: ['src/**/*.ts', 'sims/**/*.ts', 'tools/**/*.ts'],
    rules: { 'max-lines': ['error', { max: 600, skipBlankLines: false, skipComments: false }] },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: false, skipComments: false, IIFEs: true }] },
  },
  {
    files: ['src/initiator/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: [noShell, ...fsBan] }] },
  },
  ...layerRules.slice(2),
);
