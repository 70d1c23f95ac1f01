// Lint: typescript-eslint's recommended rules plus the layer rules of ARCHITECTURE.md as errors.
import tseslint from 'typescript-eslint';

const frontEnds = ['electron', 'electron/*', 'react', 'react-dom', 'react/*', 'react-dom/*'];

/** One layer's rule: `allowed` names the core layers it may import; the message says so. */
function layer(name, allowed) {
  const all = ['common', 'device', 'planes', 'raid', 'fs', 'image', 'stream', 'net', 'transfer', 'jobs', 'service', 'api'];
  const forbidden = all.filter((l) => l !== name && !allowed.includes(l));
  const message = `layering (ARCHITECTURE.md): core/${name} may import only ${allowed.length ? allowed.map((l) => `core/${l}`).join(', ') : 'nothing else of core'}`;
  return {
    files: [`core/${name}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...forbidden.map((l) => ({ group: [`../${l}/*`, `../../${l}/*`, `../${l}`, `../../${l}`], message })),
            { group: ['../../cli/*', '../../electron/*', '../../renderer/*', '../../../cli/*', '../../../electron/*', '../../../renderer/*'], message: 'layering: core never imports a front end' },
            { group: frontEnds, message: 'layering: core never imports Electron or React' },
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'tmp/**', 'test-results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  layer('common', []),
  layer('device', ['common']),
  layer('planes', ['common']),
  layer('raid', ['device', 'common']),
  layer('fs', ['planes', 'device', 'common', 'api']),
  layer('image', ['fs', 'planes', 'common', 'api']),
  layer('stream', ['image', 'fs', 'planes', 'device', 'common', 'api']),
  layer('net', ['common', 'api']),
  layer('transfer', ['stream', 'net', 'image', 'fs', 'planes', 'device', 'common', 'api']),
  layer('jobs', ['common', 'api']),
  layer('service', ['common', 'device', 'planes', 'raid', 'fs', 'image', 'stream', 'net', 'transfer', 'jobs', 'api']),
  {
    files: ['core/api/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*', '../*', ...frontEnds], message: 'layering: core/api is the contract: types and schemas only, no Node or engine imports' }] },
      ],
    },
  },
  {
    files: ['cli/**/*.ts', 'electron/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/core/*/**', '!**/core/service/index.js', '!**/core/api/index.js', '!**/core/api/*.js'],
              message: 'layering: front ends reach the engine only through core/service (and the contract in core/api)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['renderer/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['node:*', 'fs', 'path', 'electron', '**/core/*/**', '!**/core/api/*'], message: 'layering: the renderer talks only to its typed client and may import only core/api' }] },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
