import { describe, expect, it } from 'vitest';
import { DEFAULT_PROTECTED_PATHS } from '../../../src/domain/inputs.ts';
import { isTestFile, protectedMatcher, refusedWithoutReview, reviewNeeded } from '../../../src/actors/workspace/review-policy.ts';

const globs = [...DEFAULT_PROTECTED_PATHS];
const changed = (p: string, existed = true, exists = true) => ({ path: p, existed, exists });

describe('protected paths', () => {
  it('reads globs as .gitignore does: a name without a slash matches in any folder; dot files match', () => {
    const isProtected = protectedMatcher(globs);
    for (const p of ['package.json', 'packages/a/package.json', 'vitest.config.ts', 'web/vitest.config.mjs', 'jest.config.js', '.mocharc.yml', 'pytest.ini', 'tests/conftest.py', 'Makefile', '.github/workflows/ci.yml', 'package-lock.json', 'pyproject.toml']) {
      expect(isProtected(p), p).toBe(true);
    }
    for (const p of ['lib/package.js', 'src/index.ts', 'README.md', 'test/calc.test.js', 'docs/Makefile.md', 'github/x.yml']) {
      expect(isProtected(p), p).toBe(false);
    }
    expect(protectedMatcher([])('package.json')).toBe(false);
    expect(protectedMatcher(['src/**'])('src/a/b.ts')).toBe(true);
    expect(protectedMatcher(['src/**'])('lib/src/b.ts')).toBe(false);
  });

  it('knows test files by the names and folders runners look for', () => {
    for (const p of ['test/a.js', 'src/a.test.ts', 'a.spec.js', 'tests/test_x.py', 'x_test.go', '__tests__/a.js', 'pkg/test_util.py']) expect(isTestFile(p), p).toBe(true);
    for (const p of ['src/a.ts', 'latest.js', 'contest.py', 'lib/testing.js']) expect(isTestFile(p), p).toBe(false);
  });
});

describe('review decisions', () => {
  it('protected files first, then deleted tests, then "always"; "never" reviews nothing', () => {
    expect(reviewNeeded([changed('lib/a.js'), changed('package.json')], 'protected', globs)).toEqual({ reason: 'protected_paths', files: ['package.json'] });
    expect(reviewNeeded([changed('test/old.test.js', true, false)], 'protected', globs)).toEqual({ reason: 'tests_deleted', files: ['test/old.test.js'] });
    // A test the task itself added and then removed was never an existing test.
    expect(reviewNeeded([changed('test/new.test.js', false, false)], 'protected', globs)).toBeNull();
    expect(reviewNeeded([changed('lib/a.js')], 'protected', globs)).toBeNull();
    expect(reviewNeeded([changed('lib/a.js')], 'always', globs)).toEqual({ reason: 'always', files: ['lib/a.js'] });
    expect(reviewNeeded([changed('package.json')], 'never', globs)).toBeNull();
  });

  it('under "never", such an answer is refused with the path', () => {
    expect(refusedWithoutReview([changed('lib/a.js'), changed('package.json', false, true)], globs)).toMatchObject({ path: 'package.json' });
    expect(refusedWithoutReview([changed('test/a.test.js', true, false)], globs)).toMatchObject({ path: 'test/a.test.js' });
    expect(refusedWithoutReview([changed('lib/a.js')], globs)).toBeNull();
  });
});
