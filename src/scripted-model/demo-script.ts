/**
 * The bundled scripted model of `troupe demo`: a small JavaScript library, "textkit", planned
 * by the lead from a goal and built by three agents. `slugify` first ships with a bug its own
 * tests catch, and the correction fixes it: every part of the loop shows.
 */
import type { MessagesRequest, Reply } from './server.ts';

export const DEMO_GOAL =
  'Build "textkit", a tiny dependency-free JavaScript library: slugify(text) for URL slugs, ' +
  'badge(label) that renders an HTML badge for a label, and tests that cover both together.';

const PLAN = {
  tasks: [
    {
      key: 'slugify',
      title: 'slugify(text)',
      description:
        'Create lib/slugify.js exporting slugify(text): lower-case, trims, drops every character that is not a letter, digit, space or dash, and joins words with single dashes. Unit tests in test/slugify.test.js.',
      agentType: 'backend',
      dependsOn: [],
    },
    {
      key: 'badge',
      title: 'badge(label) HTML widget',
      description:
        'Create lib/badge.js exporting badge(label): an HTML <span class="badge"> with the label HTML-escaped and a data-slug attribute from slugify. Tests in test/badge.test.js.',
      agentType: 'frontend',
      dependsOn: ['slugify'],
    },
    {
      key: 'suite',
      title: 'Integration tests for textkit',
      description: 'Add test/textkit.test.js checking slugify and badge together on a few realistic labels.',
      agentType: 'test',
      dependsOn: ['slugify', 'badge'],
    },
  ],
};

const SLUGIFY_TEST = `const test = require('node:test');
const assert = require('node:assert');
const { slugify } = require('../lib/slugify.js');

test('lower-cases and joins words with dashes', () => {
  assert.strictEqual(slugify('Hello World'), 'hello-world');
});

test('drops punctuation and collapses spaces', () => {
  assert.strictEqual(slugify('  Rock & Roll!  Forever '), 'rock-roll-forever');
});
`;

const SLUGIFY_BUGGY = `/** URL slug for a text. */
function slugify(text) {
  return text.trim().toLowerCase().split(' ').join('-');
}

module.exports = { slugify };
`;

const SLUGIFY_FIXED = `/** URL slug for a text: lower-case words of letters and digits, joined by single dashes. */
function slugify(text) {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9\\s-]/g, '')
    .trim()
    .split(/[\\s-]+/)
    .filter(Boolean)
    .join('-');
}

module.exports = { slugify };
`;

const BADGE = `const { slugify } = require('./slugify.js');

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** An HTML badge for a label, safe to insert into a page. */
function badge(label) {
  const text = String(label).replace(/[&<>"']/g, (c) => ESCAPES[c]);
  return \`<span class="badge" data-slug="\${slugify(String(label))}">\${text}</span>\`;
}

module.exports = { badge };
`;

const BADGE_TEST = `const test = require('node:test');
const assert = require('node:assert');
const { badge } = require('../lib/badge.js');

test('renders a span with the label and its slug', () => {
  assert.strictEqual(badge('New Feature'), '<span class="badge" data-slug="new-feature">New Feature</span>');
});

test('escapes HTML in the label', () => {
  assert.strictEqual(badge('<b>bold</b>'), '<span class="badge" data-slug="bboldb">&lt;b&gt;bold&lt;/b&gt;</span>');
});
`;

const SUITE_TEST = `const test = require('node:test');
const assert = require('node:assert');
const { slugify } = require('../lib/slugify.js');
const { badge } = require('../lib/badge.js');

for (const label of ['Release 1.0', 'Q&A', 'Work in progress']) {
  test(\`badge and slug agree for "\${label}"\`, () => {
    assert.ok(badge(label).includes(\`data-slug="\${slugify(label)}"\`));
  });
}
`;

const files = (entries: Record<string, string>, explanation: string): Reply => ({
  kind: 'tool',
  name: 'write_files',
  input: { files: Object.entries(entries).map(([path, content]) => ({ path, action: 'create', content })), explanation },
  usage: { input_tokens: 2400, output_tokens: 600, cache_read_input_tokens: 1800, cache_creation_input_tokens: 0 },
});

/** Answers the demo's requests: the plan, then each task's files per attempt. */
export function demoResponder(req: MessagesRequest): Reply {
  if (req.tool === 'create_tasks') {
    return { kind: 'tool', name: 'create_tasks', input: PLAN, usage: { input_tokens: 1500, output_tokens: 450, cache_read_input_tokens: 0, cache_creation_input_tokens: 900 } };
  }
  switch (req.taskKey) {
    case 'slugify':
      return req.attempt === 1
        ? files({ 'lib/slugify.js': SLUGIFY_BUGGY, 'test/slugify.test.js': SLUGIFY_TEST }, 'First version of slugify with its tests.')
        : files({ 'lib/slugify.js': SLUGIFY_FIXED }, 'Strip punctuation and collapse runs of spaces and dashes.');
    case 'badge':
      return files({ 'lib/badge.js': BADGE, 'test/badge.test.js': BADGE_TEST }, 'badge() with escaping and a slug attribute.');
    case 'suite':
      return files({ 'test/textkit.test.js': SUITE_TEST }, 'Integration tests for slugify and badge.');
    case null:
    default:
      return { kind: 'error', status: 400, type: 'invalid_request_error', message: `the demo has no script for ${req.taskKey ?? 'this request'}` };
  }
}
