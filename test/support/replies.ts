/** Builders for scripted model answers. */
import type { Reply } from '../../src/scripted-model/server.ts';

export function writeFiles(files: Record<string, string | null>, explanation = 'done'): Reply {
  return {
    kind: 'tool',
    name: 'write_files',
    input: {
      files: Object.entries(files).map(([path, content]) =>
        content === null ? { path, action: 'delete' } : { path, action: 'create', content },
      ),
      explanation,
    },
  };
}

/** A module `lib/<key>.js` exporting `value()` and a node:test file checking it returns `expected`. */
export function moduleWithTest(key: string, value: string, expected = value): Reply {
  return writeFiles({
    [`lib/${key}.js`]: `exports.value = () => ${JSON.stringify(value)};\n`,
    [`test/${key}.test.js`]:
      `const test = require('node:test');\nconst assert = require('node:assert');\nconst { value } = require('../lib/${key}.js');\n` +
      `test('${key} returns its value', () => {\n  assert.strictEqual(value(), ${JSON.stringify(expected)});\n});\n`,
  });
}

export const overloaded: Reply = { kind: 'error', status: 529, type: 'overloaded_error', message: 'Overloaded', retryAfterMs: 5 };
