import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * One direction of dependencies (docs/architecture.md): cli -> node -> plugins ->
 * ha / supervisor -> gossip. A folder may not import the layers above it, and
 * outside src/gossip the library is reached only through its index.
 */
const layers = (forbidden, why) => ({
  'no-restricted-imports': [
    'error',
    {
      patterns: [
        { regex: `^(\\.\\./)+(${forbidden.join('|')})/`, message: why },
        { regex: '^(\\.\\./)+gossip/(?!index\\.js$)', message: 'import the gossip library through src/gossip/index.ts' },
      ],
    },
  ],
});

export default tseslint.config(
  { ignores: ['dist/', '.helper-dist/', 'src/gossip/gen/', 'node_modules/', '.cache/', 'vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/gossip/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+(supervisor|plugins|ha|node|cli)/', message: 'src/gossip is a library: it imports nothing of hasup' }] }],
    },
  },
  { files: ['src/supervisor/**/*.ts'], rules: layers(['plugins', 'node', 'cli', 'ha'], 'the supervisor core imports no plugin, no HA core, no composition root and no CLI') },
  { files: ['src/ha/**/*.ts'], rules: layers(['plugins', 'node', 'cli'], 'the HA core knows no plugin (ports only), no composition root and no CLI') },
  { files: ['src/plugins/**/*.ts'], rules: layers(['node', 'cli'], 'plugins are composed by src/node; they import neither it nor the CLI') },
  { files: ['src/node/**/*.ts'], rules: layers(['cli'], 'the composition root does not import the CLI') },
);
