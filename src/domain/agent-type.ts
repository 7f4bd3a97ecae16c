import type { AgentType } from '../machines/types.ts';

/**
 * Words that point at an agent type. Matched as whole words (so "latest" is not "test" and
 * "build" is not "ui"), case-insensitively.
 */
const WORDS: Record<AgentType, readonly string[]> = {
  test: ['test', 'tests', 'testing', 'tested', 'spec', 'specs', 'e2e', 'unit', 'integration', 'coverage', 'jest', 'vitest', 'pytest', 'mocha', 'playwright', 'cypress', 'assert', 'assertions', 'qa'],
  frontend: ['ui', 'ux', 'frontend', 'front-end', 'component', 'components', 'page', 'pages', 'css', 'html', 'react', 'vue', 'svelte', 'angular', 'widget', 'widgets', 'button', 'buttons', 'form', 'forms', 'layout', 'style', 'styles', 'stylesheet', 'dom', 'browser', 'view', 'views', 'screen', 'modal', 'tailwind', 'jsx', 'tsx'],
  backend: ['backend', 'back-end', 'api', 'apis', 'server', 'endpoint', 'endpoints', 'database', 'db', 'sql', 'schema', 'migration', 'route', 'routes', 'service', 'services', 'model', 'models', 'library', 'cli', 'auth', 'queue', 'worker', 'http', 'rest', 'graphql', 'module', 'function', 'algorithm'],
};

/**
 * The agent type a task's text points at. The title counts three times the description; test
 * words in a description count half (implementation tasks routinely say "with a test"). Ties and
 * texts with no telling word go to `backend`.
 */
export function inferAgentType(title: string, description = ''): AgentType {
  const score: Record<AgentType, number> = { backend: 0, frontend: 0, test: 0 };
  const count = (text: string, weight: number, testWeight: number) => {
    for (const word of text.toLowerCase().match(/[a-z0-9]+(?:-[a-z0-9]+)*/g) ?? []) {
      for (const type of ['test', 'frontend', 'backend'] as const) {
        if (WORDS[type].includes(word)) score[type] += type === 'test' ? testWeight : weight;
      }
    }
  };
  count(title, 3, 3);
  count(description, 1, 0.5);
  const best = (['test', 'frontend', 'backend'] as const).reduce((a, b) => (score[b] > score[a] ? b : a));
  return score[best] > score.backend ? best : 'backend';
}
